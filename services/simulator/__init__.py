"""AxeOS device simulator: many Bitaxe-like devices behind one HTTP server.

Device `mockaxe{i}` lives at `http://HOST:PORT/d/mockaxe{i}` and serves
`/api/system/info`, `/api/system/asic` and `POST /api/system/restart`; odd
indexes speak the legacy field set, even ones the ESP-Miner 2.15 set. The
control API under `/control` (see `control_api.py`) and the Python `Fleet`
(`RunningSimulator.fleet`) set faults, pin fields and read request counts.

    python -m services.simulator --devices 10 --port 0 --fault mockaxe3=timeout
"""
