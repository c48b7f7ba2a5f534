// smartroller live page: draws each pushed status (host/dashboard/live.py's messages).
// Lengths are mm along the back from C7 (the SVG's units); times s since 1970 (UTC).
"use strict";
(function () {
  const back = JSON.parse(document.getElementById("back-data").textContent);
  const bounds = back.boundaries_mm;
  const $ = (id) => document.getElementById(id);
  const names = ["C7", "T1", "T2", "T3", "T4", "T5", "T6", "T7", "T8", "T9", "T10", "T11",
                 "T12", "L1", "L2", "L3", "L4", "L5"];
  // For the harness and the figures in docs/benchmarks.md: per drawn status, the time
  // from the frame (on the roller's clock, else its arrival at the daemon) to the draw.
  const latencies = (window.smartrollerLatencies = []);
  const drawn = [];
  let pending = null, scheduled = false, lastUtc = null;
  const history = [];

  function yOfLevel(level) {            // continuous level -> mm from C7
    const n = bounds.length - 1;
    if (level <= 0) return bounds[0] + level * (bounds[1] - bounds[0]);
    if (level >= n) return bounds[n] + (level - n) * (bounds[n] - bounds[n - 1]);
    const i = Math.floor(level);
    return bounds[i] + (level - i) * (bounds[i + 1] - bounds[i]);
  }
  const finite = (x) => typeof x === "number" && isFinite(x);
  const levelName = (x) => names[Math.min(Math.max(Math.floor(x), 0), names.length - 1)];

  function cadence(status) {            // back-and-forth per minute over the last 30 s
    const t = status.t;
    if (!finite(t)) return null;
    history.push([t, status.strokes]);
    while (history.length && (history[0][0] > t || t - history[0][0] > 30)) history.shift();
    const span = t - history[0][0];
    if (span < 10) return null;
    return (status.strokes - history[0][1]) / 2 / (span / 60);
  }

  function setText(id, text) { const el = $(id); if (el.textContent !== text) el.textContent = text; }

  function draw(msg) {
    const s = msg.status;
    const state = $("state");
    state.dataset.state = msg.state;
    setText("title", msg.state === "connected" ? (s.in_contact ? "Rolling" : "Roller connected")
                                               : msg.title);
    setText("line", msg.state === "connected" ? "" : msg.line);
    const warning = msg.state === "connected" && !!msg.warning;
    $("warning").hidden = !warning;
    document.body.classList.toggle("warning", warning);
    const roller = $("roller");
    if (!s || msg.state !== "connected") {
      roller.setAttribute("visibility", "hidden");
      setText("where", "—"); setText("below", "");
      $("calibration").hidden = true;
      return;
    }
    if (s.in_contact && finite(s.level)) {
      const y = yOfLevel(s.level);
      roller.setAttribute("transform", `translate(0 ${y.toFixed(1)})`);
      roller.setAttribute("visibility", "visible");
      roller.dataset.level = s.level.toFixed(2);
      const sd = finite(s.sd_mm) ? Math.max(s.sd_mm, 9) : 9;
      const band = $("roller-sd");
      band.setAttribute("y", (-sd).toFixed(1));
      band.setAttribute("height", (2 * sd).toFixed(1));
      const region = (s.region || "").replace("_", " ");
      setText("where", `${levelName(s.level)} · ${region}`);
      setText("below", finite(s.p_below) ? `${Math.round(100 * s.p_below)} % likely below the ribs`
                                         + (finite(s.sd_mm) ? ` · ± ${Math.round(s.sd_mm)} mm` : "") : "");
    } else {
      roller.setAttribute("visibility", "hidden");
      setText("where", s.in_contact ? "On the roller: place not known yet" : "Off the roller");
      setText("below", "");
    }
    const zones = $("zones");
    const loads = s.zone_loads_n || [];
    while (zones.children.length < loads.length) {
      const z = document.createElement("div"); z.className = "zone";
      z.appendChild(document.createElement("span")); zones.appendChild(z);
    }
    while (zones.children.length > loads.length) zones.removeChild(zones.lastChild);
    loads.forEach((n, i) => {
      const z = zones.children[i];
      z.style.height = `${Math.min(100, Math.max(0, n / 80 * 100)).toFixed(0)}%`;
      z.firstChild.textContent = `${Math.round(n)}`;
      z.title = `zone ${i + 1}: ${n.toFixed(1)} N`;
    });
    setText("load", `total ${Math.round(s.total_load_n)} N`);
    setText("strokes", String(s.strokes));
    const c = cadence(s);
    setText("cadence", c === null ? "—" : `${c.toFixed(0)} /min`);
    setText("warnings", String(s.warnings));
    const fresh = s.message && finite(s.message_t) && s.t - s.message_t >= 0 && s.t - s.message_t <= 5;
    setText("message", fresh ? s.message : "");
    setText("fault", s.fault ? `Not storing: ${s.fault} (the roller keeps the frames)` : "");
    const cal = $("calibration");
    cal.hidden = !msg.calibration || msg.calibration === "calibrated" && !s.calibration;
    cal.dataset.calibration = msg.calibration || "";
    setText("calibration-title", {calibrating: "Calibrating", calibrated: "Calibrated",
      uncalibrated: "Uncalibrated: the place is estimated from stature alone"}[msg.calibration] || "");
    setText("calibration-message", s.calibration || "");
    const steps = $("steps");
    const wanted = (msg.steps || []).join("\n");
    if (steps.dataset.text !== wanted) {
      steps.dataset.text = wanted;
      steps.replaceChildren(...(msg.steps || []).map((line) => {
        const p = document.createElement("p"); p.textContent = line; return p;
      }));
    }
  }

  function frame() {
    scheduled = false;
    const msg = pending; pending = null;
    if (!msg) return;
    draw(msg);
    const now = Date.now() / 1000;
    const s = msg.status;
    if (s && msg.state === "connected") {
      const from = finite(s.frame_utc) ? s.frame_utc : s.received_utc;
      if (finite(from) && s.utc !== lastUtc) {
        lastUtc = s.utc;
        latencies.push({at: now, frame: now - from, daemon: finite(s.received_utc) ? now - s.received_utc : null,
                        published: now - s.utc, sent: now - msg.sent_utc});
        drawn.push(now);
        if (latencies.length > 20000) latencies.shift();
        const recent = latencies.slice(-50).map((l) => l.frame).sort((a, b) => a - b);
        setText("latency", `· frame to screen ${Math.round(1000 * recent[recent.length >> 1])} ms`);
        while (drawn.length && now - drawn[0] > 1) drawn.shift();
        const second = drawn.length;
        setText("rate", `${second} updates/s`);
      }
    }
  }

  function connect() {
    const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/live.ws`);
    ws.onmessage = (event) => {
      pending = JSON.parse(event.data);
      if (!scheduled) { scheduled = true; requestAnimationFrame(frame); }
    };
    ws.onclose = () => {
      draw({state: "offline", title: "Dashboard server stopped",
            line: "The dashboard's server does not answer: start `smartroller dashboard` again.",
            status: null});
      setTimeout(connect, 1000);
    };
  }
  connect();
})();
