// The rlops monitoring page: reads v1/dashboard every 10 s and draws its panels (tables, and charts as SVG); a
// deployment's behaviour (v1/deployments/NAME/behaviour) only when the reader presses that panel's button.
// Hand-written, no third-party code; text always goes in through textContent, never as HTML.
"use strict";

(function () {
  const REFRESH_MS = 10000;
  const SVG_NS = "http://www.w3.org/2000/svg";
  const PALETTE = ["#2b6cb0", "#c05621", "#2f855a", "#6b46c1", "#b83280", "#2c7a7b", "#975a16", "#4a5568"];
  const WIDTH = 720;

  // ---- small DOM helpers ----------------------------------------------------------------------------------------

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value !== null && value !== undefined) node.setAttribute(key, String(value));
    }
    for (const child of [].concat(children === undefined ? [] : children)) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value !== null && value !== undefined) node.setAttribute(key, String(value));
    }
    if (text !== undefined) node.textContent = String(text);
    return node;
  }

  function tooltip(node, text) {
    node.append(svg("title", {}, text));
    return node;
  }

  function badge(text) {
    const value = String(text || "?");
    return el("span", { class: "badge " + value.toLowerCase().replace(/[^a-z]/g, "") }, value);
  }

  function swatch(color) {
    const node = el("span", { class: "swatch", "aria-hidden": "true" });
    node.style.backgroundColor = color;
    return node;
  }

  function table(headers, rows, numeric) {
    const cols = new Set(numeric || []);
    const head = el("thead", {}, el("tr", {}, headers.map((h, i) => el("th", { scope: "col", class: cols.has(i) ? "n" : null }, h))));
    const body = el("tbody", {}, rows.map((row) => el("tr", {}, row.map((cell, i) => el("td", { class: cols.has(i) ? "n" : null }, cell)))));
    return el("table", {}, [head, body]);
  }

  function empty(text) {
    return el("p", { class: "empty" }, text);
  }

  function num(value, digits) {
    if (value === null || value === undefined || !Number.isFinite(value)) return "—";
    return Number(value).toPrecision(digits || 4).replace(/\.?0+(e|$)/, "$1");
  }

  function count(value) {
    return Number(value).toLocaleString("en-US");
  }

  function pct(value) {
    return (100 * value).toFixed(1) + "%";
  }

  function when(us) {
    if (us === null || us === undefined) return "—";
    return new Date(us / 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
  }

  function shortTime(us, spanUs) {
    const iso = new Date(us / 1000).toISOString();
    if (spanUs > 2 * 86400e6) return iso.slice(5, 16).replace("T", " ");
    if (spanUs > 600e6) return iso.slice(11, 16);
    return iso.slice(11, 19);
  }

  function niceTicks(lo, hi, n) {
    if (!(hi > lo)) return [lo];
    const raw = (hi - lo) / n;
    let step = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const mult of [1, 2, 5, 10]) {
      if (raw <= step * mult) { step *= mult; break; }
    }
    const ticks = [];
    for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(Math.abs(t) < step * 1e-9 ? 0 : t);
    return ticks;
  }

  function panel(id) {
    return document.querySelector("#" + id + " .body");
  }

  function fill(id, nodes) {
    const body = panel(id);
    body.replaceChildren(...[].concat(nodes));
    body.setAttribute("aria-busy", "false");
    body.dataset.state = "ready";
  }

  function colorsFor(versions) {
    const map = new Map();
    versions.forEach((v, i) => map.set(v, PALETTE[i % PALETTE.length]));
    return map;
  }

  // ---- charts ---------------------------------------------------------------------------------------------------

  function rewardChart(dep, colors) {
    const left = 56, right = 16, top = 14, bottom = 30, height = 230;
    const series = dep.rewards.filter((s) => s.points.length);
    const values = [];
    series.forEach((s) => s.points.forEach((p) => values.push(p.mean, p.low === null ? p.mean : p.low, p.high === null ? p.mean : p.high)));
    let lo = Math.min(...values), hi = Math.max(...values);
    if (lo === hi) { lo -= 0.5; hi += 0.5; }
    const pad = 0.05 * (hi - lo); lo -= pad; hi += pad;
    const t0 = dep.buckets[0], t1 = dep.buckets[dep.buckets.length - 1] + dep.bucket_us;
    const x = (us) => left + ((us - t0) / (t1 - t0)) * (WIDTH - left - right);
    const y = (v) => top + (1 - (v - lo) / (hi - lo)) * (height - top - bottom);
    const chart = svg("svg", { viewBox: `0 0 ${WIDTH} ${height}`, width: WIDTH, height: height, role: "img",
      "aria-label": `Reward over time for ${dep.name}`, class: "reward-chart" });
    for (const t of niceTicks(lo, hi, 5)) {
      chart.append(svg("line", { x1: left, x2: WIDTH - right, y1: y(t), y2: y(t), stroke: "#edf2f7" }));
      chart.append(svg("text", { x: left - 6, y: y(t) + 4, "text-anchor": "end" }, num(t, 3)));
    }
    const step = Math.max(1, Math.ceil(dep.buckets.length / 8));
    dep.buckets.forEach((b, i) => {
      if (i % step) return;
      chart.append(svg("text", { x: x(b), y: height - 10, "text-anchor": "middle" }, shortTime(b, t1 - t0)));
    });
    chart.append(svg("line", { x1: left, x2: left, y1: top, y2: height - bottom, stroke: "#a0aec0" }));
    chart.append(svg("line", { x1: left, x2: WIDTH - right, y1: height - bottom, y2: height - bottom, stroke: "#a0aec0" }));
    for (const s of series) {
      const color = colors.get(s.policy_version);
      const mid = (p) => x(p.start_us + dep.bucket_us / 2);
      const pts = s.points;
      const upper = pts.map((p) => `${mid(p).toFixed(1)},${y(p.high === null ? p.mean : p.high).toFixed(1)}`);
      const lower = pts.slice().reverse().map((p) => `${mid(p).toFixed(1)},${y(p.low === null ? p.mean : p.low).toFixed(1)}`);
      const band = svg("path", { d: "M" + upper.join(" L") + " L" + lower.join(" L") + " Z", fill: color,
        "fill-opacity": 0.18, stroke: "none", class: "band", "data-version": s.policy_version });
      chart.append(tooltip(band, `${s.policy_version}: 95% confidence band`));
      const line = svg("path", { d: "M" + pts.map((p) => `${mid(p).toFixed(1)},${y(p.mean).toFixed(1)}`).join(" L"),
        fill: "none", stroke: color, "stroke-width": 2, class: "mean", "data-version": s.policy_version });
      chart.append(line);
      for (const p of pts) {
        const dot = svg("circle", { cx: mid(p), cy: y(p.mean), r: 3, fill: color, class: "point" });
        chart.append(tooltip(dot, `${s.policy_version} at ${when(p.start_us)}: mean ${num(p.mean)} ` +
          `[${num(p.low)}, ${num(p.high)}], n = ${count(p.n)}`));
      }
    }
    return chart;
  }

  function legend(items) {
    return el("ul", { class: "legend" }, items.map(([label, color]) => el("li", {}, [swatch(color), label])));
  }

  function intervalChart(dep, arms, colors) {
    const rows = arms.filter((a) => a.mean !== null);
    const left = 250, right = 24, rowH = 28, top = 10;
    const height = top + rowH * rows.length + 28;
    const values = [];
    rows.forEach((a) => values.push(a.mean, a.low === null ? a.mean : a.low, a.high === null ? a.mean : a.high));
    let lo = Math.min(...values), hi = Math.max(...values);
    if (lo === hi) { lo -= 0.5; hi += 0.5; }
    const pad = 0.08 * (hi - lo); lo -= pad; hi += pad;
    const x = (v) => left + ((v - lo) / (hi - lo)) * (WIDTH - left - right);
    const chart = svg("svg", { viewBox: `0 0 ${WIDTH} ${height}`, width: WIDTH, height: height, role: "img",
      "aria-label": `Mean reward per arm for ${dep.name}`, class: "interval-chart" });
    const axis = top + rowH * rows.length;
    for (const t of niceTicks(lo, hi, 6)) {
      chart.append(svg("line", { x1: x(t), x2: x(t), y1: top, y2: axis, stroke: "#edf2f7" }));
      chart.append(svg("text", { x: x(t), y: axis + 16, "text-anchor": "middle" }, num(t, 3)));
    }
    rows.forEach((a, i) => {
      const cy = top + rowH * i + rowH / 2;
      const color = colors.get(a.policy_version) || PALETTE[0];
      chart.append(svg("text", { x: left - 8, y: cy + 4, "text-anchor": "end", class: "title" }, `${a.role} · ${a.policy_version}`));
      if (a.low !== null) {
        chart.append(svg("line", { x1: x(a.low), x2: x(a.high), y1: cy, y2: cy, stroke: color, "stroke-width": 3, class: "ci" }));
      }
      const dot = svg("circle", { cx: x(a.mean), cy: cy, r: 5, fill: color, class: "point" });
      chart.append(tooltip(dot, `${a.role} ${a.policy_version}: ${num(a.mean)} [${num(a.low)}, ${num(a.high)}], n = ${count(a.rewarded)}`));
    });
    return chart;
  }

  function heat(psi, warn, alert) {
    if (psi === null) return "#edf2f7";
    const mix = (a, b, t) => {
      const pa = [1, 3, 5].map((i) => parseInt(a.slice(i, i + 2), 16));
      const pb = [1, 3, 5].map((i) => parseInt(b.slice(i, i + 2), 16));
      return "rgb(" + pa.map((v, i) => Math.round(v + (pb[i] - v) * Math.max(0, Math.min(1, t)))).join(",") + ")";
    };
    const w = warn || 0.1, a = alert || 0.25;
    if (psi <= w) return mix("#f0fff4", "#fefcbf", psi / w);
    if (psi <= a) return mix("#fefcbf", "#f6ad55", (psi - w) / (a - w));
    return mix("#f56565", "#9b2c2c", (psi - a) / a);
  }

  function heatmap(dep) {
    const drift = dep.drift;
    const left = 130, top = 8, cellH = 20, bottom = 30, right = 10;
    const n = dep.buckets.length;
    const cellW = Math.max(6, Math.min(40, (WIDTH - left - right) / n));
    const width = Math.max(WIDTH, left + cellW * n + right);
    const height = top + cellH * drift.features.length + bottom;
    const span = n * dep.bucket_us;
    const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, width: width, height: height, role: "img",
      "aria-label": `PSI per feature over time for ${dep.name}`, class: "heatmap" });
    drift.features.forEach((row, r) => {
      const g = svg("g", { class: "row", "data-feature": row.feature });
      const yy = top + r * cellH;
      g.append(svg("text", { x: left - 6, y: yy + cellH / 2 + 4, "text-anchor": "end", class: "title" }, row.feature));
      row.psi.forEach((value, b) => {
        const cell = svg("rect", { x: left + b * cellW, y: yy, width: cellW - 1, height: cellH - 1,
          fill: heat(value, drift.warn, drift.alert), class: "cell", "data-psi": value === null ? "" : value });
        g.append(tooltip(cell, `${row.feature} at ${when(dep.buckets[b])}: ` +
          (value === null ? `too few rows (${drift.rows[b]} < ${drift.min_rows})` : `PSI ${num(value, 3)} over ${count(drift.rows[b])} rows`)));
      });
      chart.append(g);
    });
    const step = Math.max(1, Math.ceil(n / 8));
    dep.buckets.forEach((b, i) => {
      if (i % step) return;
      chart.append(svg("text", { x: left + i * cellW, y: height - 10 }, shortTime(b, span)));
    });
    return chart;
  }

  function actionBars(dist, colors) {
    const left = 190, right = 10, rowH = 26, top = 6;
    const height = top + rowH * dist.length + 6;
    const chart = svg("svg", { viewBox: `0 0 ${WIDTH} ${height}`, width: WIDTH, height: height, role: "img",
      "aria-label": "Share of each action per policy version", class: "action-chart" });
    dist.forEach((d, i) => {
      const yy = top + i * rowH;
      chart.append(svg("text", { x: left - 8, y: yy + rowH / 2 + 3, "text-anchor": "end", class: "title" }, d.policy_version));
      let at = left;
      for (const a of d.actions) {
        const w = a.share * (WIDTH - left - right);
        const rect = svg("rect", { x: at, y: yy + 2, width: Math.max(0, w - 1), height: rowH - 6,
          fill: colors.get(a.action), class: "share", "data-action": a.action });
        chart.append(tooltip(rect, `${d.policy_version}: ${a.action} ${pct(a.share)} (${count(a.count)})`));
        at += w;
      }
    });
    return chart;
  }

  // ---- panels ---------------------------------------------------------------------------------------------------

  function perDeployment(data, id, draw) {
    if (!data.deployments.length) {
      fill(id, empty("no deployments yet: create one with 'rlops deploy apply FILE'"));
      return;
    }
    const nodes = [];
    for (const dep of data.deployments) {
      nodes.push(el("h3", {}, dep.name));
      nodes.push(...[].concat(draw(dep)));
    }
    fill(id, nodes);
  }

  function versionColors(dep) {
    const versions = new Set();
    dep.arms.forEach((a) => versions.add(a.policy_version));
    dep.rewards.forEach((s) => versions.add(s.policy_version));
    dep.actions.forEach((d) => versions.add(d.policy_version));
    return colorsFor(Array.from(versions).sort());
  }

  function renderDeployments(data) {
    perDeployment(data, "deployments", (dep) => {
      const facts = el("dl", {}, [
        el("dt", {}, "revision"), el("dd", {}, String(dep.revision)),
        el("dt", {}, "policy"), el("dd", {}, el("code", {}, dep.policy)),
        el("dt", {}, "reward spec"), el("dd", {}, el("code", {}, dep.reward_spec)),
        el("dt", {}, "decisions"), el("dd", {}, `${count(dep.decisions)} (${count(dep.rewarded)} with a reward)`),
      ]);
      const arms = table(["arm", "policy version", "share of units", "registry", "decisions"], dep.arms.map((a) => [
        badge(a.role), el("code", { class: "version" }, a.policy_version), pct(a.fraction),
        a.registry_ref ? el("span", {}, [el("code", {}, a.registry_ref), " ", badge(a.registry_stage || "unknown")]) : "—",
        count(a.decisions),
      ]), [2, 4]);
      arms.classList.add("arms");
      const nodes = [facts, arms];
      if (dep.changes.length) {
        nodes.push(el("h4", {}, "Latest rollout changes"), table(["when", "revision", "change", "version", "who", "why"],
          dep.changes.slice().reverse().map((c) => [when(c.ts_us), String(c.revision), c.action, c.version || "—", c.actor, c.reason]), [1]));
      }
      return nodes;
    });
  }

  function renderRewards(data) {
    perDeployment(data, "rewards", (dep) => {
      const series = dep.rewards.filter((s) => s.points.length);
      if (!series.length) return empty("no data yet: no decision in the window has a reward");
      const colors = versionColors(dep);
      return [rewardChart(dep, colors), legend(series.map((s) => [s.policy_version, colors.get(s.policy_version)]))];
    });
  }

  function renderComparison(data) {
    perDeployment(data, "comparison", (dep) => {
      const c = dep.comparison;
      const colors = versionColors(dep);
      const nodes = [];
      if (c.arms.some((a) => a.mean !== null)) nodes.push(intervalChart(dep, c.arms, colors));
      nodes.push(table(["arm", "policy version", "decisions", "with reward", "mean reward", "95% interval"], c.arms.map((a) => [
        badge(a.role), el("code", {}, a.policy_version), count(a.decisions), count(a.rewarded), num(a.mean),
        a.low === null ? "—" : `[${num(a.low)}, ${num(a.high)}]`,
      ]), [2, 3, 4]));
      if (c.guardrail) {
        const g = c.guardrail;
        const numbers = g.n_canary && g.n_production
          ? `canary − production ${num(g.difference)} in [${num(g.low)}, ${num(g.high)}] over ${count(g.n_canary)} / ${count(g.n_production)} rewards; `
          : "";
        nodes.push(el("p", { class: "guardrail" }, ["Guardrail: ", badge(g.decision), " ", g.reason, ` (${numbers}${g.source})`]));
      } else if (c.note) {
        nodes.push(el("p", { class: "empty" }, c.note));
      }
      return nodes;
    });
  }

  function renderDrift(data) {
    perDeployment(data, "drift", (dep) => {
      const d = dep.drift;
      if (!d.features.length) return empty(d.note === "no data yet" ? "no data yet" : d.note || "no data yet");
      return [heatmap(dep), el("p", { class: "help" }, [
        `Reference: ${d.reference}` + (d.reference_start_us === null ? ". " :
          ` (${when(d.reference_start_us)} to ${when(d.reference_end_us)}). `),
        legendSpan(heat(0, d.warn, d.alert), "stable"), " ",
        legendSpan(heat(d.warn, d.warn, d.alert), `> ${d.warn}`), " ",
        legendSpan(heat(d.alert * 1.01, d.warn, d.alert), `> ${d.alert}`), " ",
        legendSpan(heat(null), `fewer than ${d.min_rows} rows`),
      ])];
    });
  }

  function legendSpan(color, label) {
    return el("span", {}, [swatch(color), label]);
  }

  function renderActions(data) {
    perDeployment(data, "actions", (dep) => {
      if (!dep.actions.length) return empty("no data yet");
      const names = [];
      dep.actions.forEach((d) => d.actions.forEach((a) => { if (!names.includes(a.action)) names.push(a.action); }));
      const colors = colorsFor(names);
      const rows = dep.actions.map((d) => [el("code", {}, d.policy_version), count(d.decisions),
        ...names.map((n) => { const a = d.actions.find((x) => x.action === n); return a ? pct(a.share) : "—"; })]);
      return [actionBars(dep.actions, colors), legend(names.map((n) => [n, colors.get(n)])),
        table(["policy version", "decisions", ...names], rows, names.map((_, i) => i + 1).concat([1]))];
    });
  }

  function renderAlerts(data) {
    const a = data.alerts;
    if (!a.available) { fill("alerts", empty(a.note || "no alerts store")); return; }
    if (!a.alerts.length) { fill("alerts", empty(a.note || "no alerts")); return; }
    fill("alerts", table(["fired", "rule", "deployment", "severity", "state", "value", "message"], a.alerts.map((x) => [
      when(x.fired_at_us), x.rule, x.deployment || "—", badge(x.severity), badge(x.state),
      `${num(x.value)} (threshold ${num(x.threshold)})`, x.message])));
  }

  function renderReports(data) {
    const reports = data.validation_reports;
    if (!reports.length) { fill("reports", empty("no validation reports yet: run 'rlops validate'")); return; }
    fill("reports", table(["report", "status", "policy", "gates", "written"], reports.map((r) => [
      el("span", {}, [el("code", {}, r.location), ` (${r.source})`]), badge(r.status),
      r.policy_kind ? `${r.policy_kind} ${r.policy_hash || ""}` : "—",
      r.gates.length ? el("ul", {}, r.gates.map((g) => el("li", { title: g.reason }, [g.name, " ", badge(g.status)]))) : "—",
      when(r.modified_us),
    ])));
  }

  function interval(low, high) {
    return `[${num(low)}, ${num(high)}]`;
  }

  function renderCards(data) {
    const cards = data.model_cards;
    if (!cards.length) { fill("cards", empty("no registered versions yet: 'rlops models register'")); return; }
    // Keep the cards a reader opened open across refreshes.
    const opened = new Set(Array.from(panel("cards").querySelectorAll("details[open]"), (d) => d.dataset.ref));
    fill("cards", cards.map((c) => {
      const facts = [["stage", badge(c.stage)], ["kind", c.kind], ["content hash", el("code", {}, c.content_hash)],
        ["registered", `${when(c.created_at_us)} by ${c.actor}`],
        ["verified", c.verified ? "yes" : `no: ${c.problem}`],
        ["validation", c.report_status ? badge(c.report_status) : "registered without a report"]];
      if (c.architecture) facts.push(["architecture", c.architecture]);
      if (c.training_data) facts.push(["training data", c.training_data]);
      if (c.owners.length) facts.push(["owners", c.owners.join(", ")]);
      for (const [key, value] of Object.entries(c.lineage)) {
        if (value !== null && value !== "") facts.push([`lineage ${key}`, String(value)]);
      }
      const dl = el("dl", {}, facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
      const parts = [el("summary", {}, [el("strong", {}, c.ref), " ", badge(c.stage)])];
      if (c.intended_use) {
        parts.push(el("h4", {}, "Intended use"), el("p", { class: "use" }, c.intended_use + (c.intended_use_declared ? "" : " (derived)")));
      }
      parts.push(dl);
      if (c.card_problem) parts.push(el("p", { class: "empty" }, `model card: ${c.card_problem}`));
      if (c.gates.length) {
        parts.push(el("h4", {}, "Gates"), table(["gate", "status", "the numbers"], c.gates.map((g) => [g.name, badge(g.status), g.reason])));
      }
      if (c.estimates.length) {
        parts.push(el("h4", {}, "Off-policy evaluation"), table(["estimator", "value", "interval", "level"], c.estimates.map((e) => [
          e.name, num(e.value), interval(e.low, e.high), e.level === null ? "—" : pct(e.level)]), [1]));
      }
      if (c.stress.length) {
        parts.push(el("h4", {}, "Stress suite"), table(["variation", "mean return", "interval", "baseline", "difference", "violations"],
          c.stress.map((v) => [v.variation, num(v.mean_return), interval(v.low, v.high), num(v.baseline),
            `${num(v.difference)} ${interval(v.difference_low, v.difference_high)}`, num(v.violation_rate)]), [1, 3, 5]));
      }
      if (c.limitations.length) {
        parts.push(el("h4", {}, "Known limitations"), el("ul", { class: "limitations" }, c.limitations.map((x) => el("li", {}, x))));
      }
      parts.push(el("p", { class: "empty" }, ["the whole card: ", el("code", {}, `rlops models card ${c.ref}`)]));
      if (c.history.length) {
        parts.push(el("h4", {}, "Stage history"), table(["when", "from", "to", "who", "why"], c.history.map((t) => [
          when(t.at_us), t.from_stage || "—", t.to_stage, t.actor, t.reason])));
      }
      return el("details", { class: "card", "data-ref": c.ref, open: opened.has(c.ref) ? "" : null }, parts);
    }));
  }

  // ---- refresh loop ---------------------------------------------------------------------------------------------

  const status = document.getElementById("status");
  const deploymentSelect = document.getElementById("deployment");
  const windowSelect = document.getElementById("window");
  const signin = document.getElementById("signin");
  let known = [];
  let timer = null;

  // The API key: from the address's fragment (#key=..., never sent to the server or kept in its logs), else from
  // this tab's session storage, else asked for. It goes only into the Authorization header of data requests.
  const KEY_ITEM = "rlops.apikey";
  const fragment = new URLSearchParams(location.hash.slice(1));
  if (fragment.get("key")) {
    sessionStorage.setItem(KEY_ITEM, fragment.get("key"));
    history.replaceState(null, "", location.pathname + location.search);
  }
  signin.addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY_ITEM, document.getElementById("apikey").value.trim());
    document.getElementById("apikey").value = "";
    signin.hidden = true;
    refresh();
  });

  function updateDeploymentChoices(names) {
    if (names.join("\n") === known.join("\n")) return;
    known = names.slice();
    const chosen = deploymentSelect.value;
    deploymentSelect.replaceChildren(el("option", { value: "" }, "all deployments"),
      ...names.map((n) => el("option", { value: n }, n)));
    deploymentSelect.value = names.includes(chosen) ? chosen : "";
    if (deploymentSelect.value !== chosen) behaviourPrompt();
  }

  async function refresh() {
    clearTimeout(timer);
    const params = new URLSearchParams();
    if (deploymentSelect.value) params.set("deployment", deploymentSelect.value);
    if (windowSelect.value) params.set("window", windowSelect.value);
    const url = "v1/dashboard" + (params.toString() ? "?" + params : "");
    try {
      const key = sessionStorage.getItem(KEY_ITEM);
      if (!key) {
        signin.hidden = false;
        status.textContent = "enter an API key to see the dashboard";
        return;
      }
      const response = await fetch(url, { headers: { Accept: "application/json", Authorization: `Bearer ${key}` },
        cache: "no-store" });
      if (response.status === 401) {
        sessionStorage.removeItem(KEY_ITEM);
        signin.hidden = false;
        status.classList.add("error");
        status.textContent = "that API key was not accepted; enter another";
        return;
      }
      const data = await response.json();
      if (!response.ok) throw new Error((data.error && data.error.message) || response.statusText);
      if (!deploymentSelect.value) updateDeploymentChoices(data.deployments.map((d) => d.name));
      const failed = [];
      for (const render of [renderDeployments, renderRewards, renderComparison, renderDrift, renderActions,
        renderAlerts, renderReports, renderCards]) {
        try {
          render(data);
        } catch (err) {
          failed.push(render.name);
          console.error(`dashboard: ${render.name} failed`, err);  // a bug in this page: say it where tests look
        }
      }
      status.classList.toggle("error", failed.length > 0);
      status.textContent = (failed.length ? `could not draw ${failed.join(", ")}; ` : "") + `updated ${when(data.generated_at_us)} (computed in ${Math.round(data.compute_ms)} ms); refreshes every ${REFRESH_MS / 1000} s`;
      document.body.dataset.loaded = "true";
    } catch (err) {
      status.classList.add("error");
      status.textContent = `could not load the dashboard data: ${err.message}; retrying`;
    }
    timer = setTimeout(refresh, REFRESH_MS);
  }

  // ---- behaviour: computed on the server when the reader asks (a button), never on the 10-second refresh --------

  const behaviourButton = document.getElementById("behaviour-show");
  let behaviourAsked = 0;  // bumped by every request and every change of deployment: older answers are dropped

  function svgImage(text, alt) {
    // A chart the server drew, shown as an <img> from a data: URL: the CSP allows data: images, and an image's
    // SVG runs no script and cannot touch this page.
    const bytes = new TextEncoder().encode(text);
    let binary = "";
    for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    return el("img", { class: "plot", src: "data:image/svg+xml;base64," + btoa(binary), alt: alt });
  }

  function behaviourPrompt() {
    behaviourAsked += 1;
    const name = deploymentSelect.value;
    behaviourButton.disabled = !name;
    behaviourButton.textContent = name ? `Show the behaviour of ${name}` : "Show behaviour";
    fill("behaviour", empty(name ? "press the button to compute it (kept on the server for a minute)"
      : "choose a deployment in the selector above, then press the button"));
  }

  function behaviourError(text) {
    const body = panel("behaviour");
    body.replaceChildren(el("p", { class: "error", role: "alert" }, text));
    body.setAttribute("aria-busy", "false");
    body.dataset.state = "error";
  }

  function renderBehaviour(b) {
    const label = b.score_label;
    const imp = b.importance;
    const nodes = [el("p", {}, `${b.policy_version}: ${label} (${b.score_description}) over ${count(b.rows)} recent contexts` +
      (b.skipped_rows ? ` (${count(b.skipped_rows)} more did not fit its schema)` : "") +
      `; computed ${when(b.computed_at_us)}. Chosen actions: ` +
      imp.actions.map((a, i) => `${a} ${pct(imp.action_share[i])}`).join(", ") + ".")];
    nodes.push(el("h3", {}, "Feature importance"));
    if (b.importance_svg) {
      nodes.push(svgImage(b.importance_svg, `Feature importance of ${b.policy_version}, most important first, as the share ` +
        "of decisions changed when the feature is shuffled: " + imp.features.map((f) => `${f.feature} ${pct(f.permutation)}`).join(", ")));
    }
    nodes.push(table(["feature", "decisions changed when shuffled", "± sd", `mean change of the chosen action's ${label}`],
      imp.features.map((f) => [f.feature, pct(f.permutation), pct(f.permutation_std), num(f.score_shift)]), [1, 2, 3]));
    for (const d of b.dependence) {
      nodes.push(el("h3", {}, d.feature));
      const last = d.pd.length - 1;
      const ends = d.actions.map((a, k) => `${a} ${num(d.pd[0][k])} at ${d.grid[0]} to ${num(d.pd[last][k])} at ${d.grid[last]}`);
      const plots = [];
      if (d.pdp_svg) {
        plots.push(el("div", {}, svgImage(d.pdp_svg, `Partial dependence of each action's ${label} on ${d.feature}, over ` +
          `${d.n_ice} single contexts' curves (ICE): ${ends.join("; ")}`)));
      }
      if (d.decisions_svg) {
        plots.push(el("div", {}, svgImage(d.decisions_svg, `Share of the decisions going to each action as ${d.feature} varies`)));
      }
      nodes.push(plots.length ? el("div", { class: "plots" }, plots) : empty("nothing to plot"));
    }
    for (const [name, reason] of Object.entries(b.skipped_features)) nodes.push(el("p", { class: "empty" }, `${name}: ${reason}`));
    fill("behaviour", nodes);
  }

  async function showBehaviour() {
    const name = deploymentSelect.value;
    const key = sessionStorage.getItem(KEY_ITEM);
    if (!name) return;
    if (!key) {
      signin.hidden = false;
      behaviourError("enter an API key first");
      return;
    }
    const asked = ++behaviourAsked;
    const body = panel("behaviour");
    body.replaceChildren(empty(`computing the behaviour of ${name}…`));
    body.setAttribute("aria-busy", "true");
    body.dataset.state = "loading";
    behaviourButton.disabled = true;
    try {
      const response = await fetch(`v1/deployments/${encodeURIComponent(name)}/behaviour`, {
        headers: { Accept: "application/json", Authorization: `Bearer ${key}` }, cache: "no-store" });
      const data = await response.json().catch(() => ({}));
      if (asked !== behaviourAsked) return;
      const message = (data.error && data.error.message) || response.statusText;
      if (response.ok) {
        renderBehaviour(data);
      } else if (response.status === 401) {
        sessionStorage.removeItem(KEY_ITEM);
        signin.hidden = false;
        behaviourError("that API key was not accepted; enter another");
      } else if (response.status === 403) {
        behaviourError(`This key may not see the behaviour: it needs read_probabilities on ${name}. ${message}`);
      } else {
        behaviourError(`No behaviour to show for ${name} (${response.status}): ${message}`);
      }
    } catch (err) {
      if (asked === behaviourAsked) behaviourError(`could not load the behaviour of ${name}: ${err.message}`);
    } finally {
      if (asked === behaviourAsked) behaviourButton.disabled = !deploymentSelect.value;
    }
  }

  behaviourButton.addEventListener("click", showBehaviour);
  deploymentSelect.addEventListener("change", behaviourPrompt);
  deploymentSelect.addEventListener("change", refresh);
  windowSelect.addEventListener("change", refresh);
  behaviourPrompt();
  refresh();
})();
