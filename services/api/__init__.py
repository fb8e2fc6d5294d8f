"""The API gateway: answers the frontend from views of the streams, never from Grafana or the devices."""
