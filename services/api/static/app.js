// The fleet page: polls the gateway's JSON API and embeds public dashboards.
// Plain JavaScript, no build step; every value reaches the page through textContent.
"use strict";

(() => {
  const POLL_MS = 2000;
  const PAGE_SIZE = 50;
  const GRAFANA_OK_FOR_MS = 30000;
  const GRAFANA_RETRY_MS = 5000;

  const $ = (id) => document.getElementById(id);
  const state = {
    theme: storedTheme(),
    selected: null, // device id, or null for the fleet overview
    selectedName: null,
    q: "",
    status: "",
    offset: 0,
    total: 0,
    skewMs: 0, // server clock minus browser clock
    grafana: { ok: null, checkedAt: 0 },
    running: false,
    again: false,
    timer: null,
  };

  // --- helpers -------------------------------------------------------------------

  function storedTheme() {
    try {
      return localStorage.getItem("pluto-theme") === "dark" ? "dark" : "light";
    } catch {
      return "light";
    }
  }

  async function getJson(path) {
    const response = await fetch(path, { headers: { Accept: "application/json" }, cache: "no-store" });
    const body = await response.json().catch(() => null);
    return { ok: response.ok, status: response.status, body };
  }

  function number(value, digits) {
    return value.toLocaleString(undefined, { minimumFractionDigits: digits, maximumFractionDigits: digits });
  }

  function hashrate(ghs) {
    if (ghs === null || ghs === undefined) return "–";
    return ghs >= 1000 ? `${number(ghs / 1000, 2)} TH/s` : `${number(ghs, 1)} GH/s`;
  }

  function unit(value, suffix, digits = 1) {
    return value === null || value === undefined ? "–" : `${number(value, digits)} ${suffix}`;
  }

  function ago(epochSeconds) {
    if (epochSeconds === null || epochSeconds === undefined) return "never";
    const seconds = Math.max(0, Math.round((Date.now() + state.skewMs) / 1000 - epochSeconds));
    if (seconds < 60) return `${seconds} s ago`;
    if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
    if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
    return `${Math.floor(seconds / 86400)} d ago`;
  }

  function setText(id, text) {
    const element = $(id);
    if (element.textContent !== text) element.textContent = text;
  }

  // --- the connection badge --------------------------------------------------------

  async function refreshReadiness() {
    const badge = $("connection");
    try {
      const answer = await getJson("/readyz");
      const body = answer.body || {};
      if (answer.ok) {
        badge.textContent = "live";
        badge.className = "badge ok";
      } else if (body.nats_connected === false) {
        badge.textContent = "gateway waiting for NATS";
        badge.className = "badge bad";
      } else {
        badge.textContent = "catching up with the bus…";
        badge.className = "badge";
      }
    } catch {
      badge.textContent = "gateway unreachable";
      badge.className = "badge bad";
    }
  }

  // --- overview ----------------------------------------------------------------------

  async function refreshOverview() {
    const answer = await getJson("/api/v1/overview");
    if (!answer.ok) return;
    const o = answer.body;
    state.skewMs = o.computed_at * 1000 - Date.now();
    setText("ov-total", String(o.total_hardware));
    setText("ov-online", String(o.hardware_online));
    setText("ov-offline", String(o.hardware_offline));
    setText("ov-hashrate", hashrate(o.total_hashrate_ghs));
    setText("ov-average", hashrate(o.average_hashrate_ghs));
    setText("ov-power", unit(o.total_power_watts, "W"));
    setText("ov-efficiency", unit(o.total_efficiency_jth, "J/TH"));
  }

  // --- the device table ----------------------------------------------------------------

  function row(tbody, device) {
    let tr = tbody.querySelector(`tr[data-device-id="${CSS.escape(device.id)}"]`);
    if (!tr) {
      tr = document.createElement("tr");
      tr.dataset.deviceId = device.id;
      const name = document.createElement("td");
      name.className = "hostname";
      const button = document.createElement("button");
      button.type = "button";
      name.appendChild(button);
      tr.appendChild(name);
      for (const cls of ["status", "num hashrate", "num power", "num temperature", "num efficiency", "seen"]) {
        const td = document.createElement("td");
        td.className = cls;
        tr.appendChild(td);
      }
      tr.addEventListener("click", () => select(device.id, tr.dataset.name));
    }
    const cells = tr.children;
    const name = device.hostname || device.id;
    tr.dataset.name = name;
    tr.dataset.status = device.status;
    tr.title = device.url;
    if (cells[0].firstChild.textContent !== name) cells[0].firstChild.textContent = name;
    const status = device.status + (device.failing && device.last_error ? ` (${device.last_error.error})` : "");
    cells[1].textContent = status;
    cells[1].className = `status status-${device.status}${device.failing ? " failing" : ""}`;
    cells[2].textContent = hashrate(device.hashrate_ghs);
    cells[3].textContent = unit(device.power_watts, "W");
    cells[4].textContent = unit(device.asic_temp_celsius, "°C");
    cells[5].textContent = unit(device.efficiency_jth, "J/TH");
    cells[6].textContent = ago(device.last_seen_at);
    tr.classList.toggle("selected", device.id === state.selected);
    return tr;
  }

  async function refreshDevices() {
    const params = new URLSearchParams({ limit: String(PAGE_SIZE), offset: String(state.offset) });
    if (state.q) params.set("q", state.q);
    if (state.status) params.set("status", state.status);
    const answer = await getJson(`/api/v1/devices?${params}`);
    if (!answer.ok) return;
    const { items, total } = answer.body;
    state.total = total;
    const tbody = $("devices").tBodies[0];
    const keep = new Set();
    for (const device of items) {
      const tr = row(tbody, device);
      keep.add(tr);
      tbody.appendChild(tr); // in the API's order
    }
    for (const tr of Array.from(tbody.rows)) if (!keep.has(tr)) tr.remove();
    $("empty").hidden = items.length > 0;
    const last = Math.min(state.offset + items.length, total);
    setText("page-info", total ? `${state.offset + 1}–${last} of ${total}` : "0 devices");
    $("prev").disabled = state.offset === 0;
    $("next").disabled = last >= total;
  }

  // --- the dashboard panel -----------------------------------------------------------------

  async function grafanaReachable() {
    const now = Date.now();
    const { ok, checkedAt } = state.grafana;
    if (ok === true && now - checkedAt < GRAFANA_OK_FOR_MS) return true;
    if (ok === false && now - checkedAt < GRAFANA_RETRY_MS) return false;
    try {
      const response = await fetch("/grafana/api/health", { cache: "no-store" });
      const body = await response.json().catch(() => null);
      state.grafana.ok = response.ok && body !== null && body.database === "ok";
    } catch {
      state.grafana.ok = false;
    }
    state.grafana.checkedAt = now;
    return state.grafana.ok;
  }

  function showMessage(text, problem) {
    const iframe = $("dashboard");
    iframe.hidden = true;
    if (iframe.hasAttribute("src")) iframe.removeAttribute("src");
    const message = $("dashboard-message");
    message.textContent = text;
    message.classList.toggle("problem", Boolean(problem));
    message.hidden = false;
  }

  function showDashboard(url) {
    const iframe = $("dashboard");
    $("dashboard-message").hidden = true;
    iframe.hidden = false;
    if (iframe.getAttribute("src") !== url) iframe.setAttribute("src", url);
  }

  async function refreshDashboard() {
    const what = state.selected ? `the dashboard of ${state.selectedName || state.selected}` : "the fleet overview";
    setText("dashboard-title", state.selected ? state.selectedName || state.selected : "Fleet overview");
    const path = state.selected
      ? `/api/v1/devices/${encodeURIComponent(state.selected)}/dashboard?theme=${state.theme}`
      : `/api/v1/dashboards/overview?theme=${state.theme}`;
    const answer = await getJson(path);
    if (!answer.ok) {
      const detail = answer.body && answer.body.detail ? `: ${answer.body.detail}` : "";
      showMessage(`Cannot show ${what} (HTTP ${answer.status}${detail}).`, true);
      return;
    }
    const link = answer.body;
    if (link.status === "pending" || !link.url) {
      showMessage(
        `${what[0].toUpperCase()}${what.slice(1)} is not published yet. The dashboards service ` +
          "publishes it once Grafana has loaded it; this page shows it as soon as it is announced.",
      );
      return;
    }
    if (link.status !== "published") {
      showMessage(`${what[0].toUpperCase()}${what.slice(1)} is not published (${link.status}).`);
      return;
    }
    if (!link.url.startsWith("/") || link.url.startsWith("//")) {
      showMessage(`The gateway gave an unusable address for ${what}.`, true);
      return;
    }
    if (!(await grafanaReachable())) {
      showMessage(
        "Grafana is not reachable at /grafana/ from this page, so the dashboard cannot be shown. " +
          "The numbers above come from the gateway and stay live.",
        true,
      );
      return;
    }
    showDashboard(link.url);
  }

  // --- the loop ---------------------------------------------------------------------------

  async function tick() {
    if (state.running) {
      state.again = true;
      return;
    }
    state.running = true;
    clearTimeout(state.timer);
    try {
      await Promise.all([refreshReadiness(), refreshOverview(), refreshDevices(), refreshDashboard()]);
    } catch (error) {
      const badge = $("connection");
      badge.textContent = "gateway unreachable";
      badge.className = "badge bad";
    } finally {
      state.running = false;
      if (state.again) {
        state.again = false;
        tick();
      } else {
        state.timer = setTimeout(tick, POLL_MS);
      }
    }
  }

  // --- what the user does --------------------------------------------------------------------

  function select(deviceId, name) {
    state.selected = deviceId;
    state.selectedName = name || deviceId;
    for (const tr of $("devices").tBodies[0].rows) tr.classList.toggle("selected", tr.dataset.deviceId === deviceId);
    tick();
  }

  function applyTheme(theme) {
    state.theme = theme;
    document.documentElement.dataset.theme = theme;
    const toggle = $("theme-toggle");
    toggle.setAttribute("aria-pressed", String(theme === "dark"));
    toggle.textContent = theme === "dark" ? "Light theme" : "Dark theme";
    try {
      localStorage.setItem("pluto-theme", theme);
    } catch {
      // private mode: the choice lasts for this page only
    }
  }

  function start() {
    applyTheme(state.theme);
    $("theme-toggle").addEventListener("click", () => {
      applyTheme(state.theme === "dark" ? "light" : "dark");
      tick();
    });
    $("show-overview").addEventListener("click", () => select(null, null));
    let typing = null;
    $("search").addEventListener("input", (event) => {
      clearTimeout(typing);
      typing = setTimeout(() => {
        state.q = event.target.value.trim();
        state.offset = 0;
        tick();
      }, 250);
    });
    $("status-filter").addEventListener("change", (event) => {
      state.status = event.target.value;
      state.offset = 0;
      tick();
    });
    $("prev").addEventListener("click", () => {
      state.offset = Math.max(0, state.offset - PAGE_SIZE);
      tick();
    });
    $("next").addEventListener("click", () => {
      if (state.offset + PAGE_SIZE < state.total) state.offset += PAGE_SIZE;
      tick();
    });
    tick();
  }

  start();
})();
