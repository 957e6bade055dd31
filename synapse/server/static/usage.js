// Settings → Usage. Plain JS, no build step, no chart library. Everything comes from GET /api/usage.
"use strict";
(function () {
  const { $, el, api, showBanner } = window.Synapse;
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));
  const SVG = "http://www.w3.org/2000/svg";
  const RECENT = 50;
  const PRESETS = { "24h": "the last 24 hours", "7d": "the last 7 days", "30d": "the last 30 days", "all": "all time" };
  const PROVIDERS = {
    anthropic: "Anthropic", openai: "OpenAI", gemini: "Google Gemini", xai: "xAI", deepseek: "DeepSeek",
    bedrock: "AWS Bedrock", oaic: "OpenAI Compatible", ollama: "Ollama", locv1: "Local V1", hf: "Hugging Face",
  };
  const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  let seq = 0;
  let lastSeries = [];

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // --- formatting (the same rules as synapse.usage.report.cost_label) -----------------

  const int = (n) => (n === null || n === undefined) ? "—" : Number(n).toLocaleString("en-US");
  // $1,234.50 from $100, $0.0123 down to a cent, two significant digits below ($0.000042).
  function usd(v) {
    if (v === null || v === undefined) return "—";
    if (v < 0) return "-" + usd(-v);  // a cache write can cost more than it saved so far
    if (v === 0) return "$0.00";
    if (v >= 100) return "$" + v.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
    if (v >= 0.01) return "$" + v.toFixed(4);
    const digits = Math.min(12, 1 - Math.floor(Math.log10(v)));
    return "$" + v.toFixed(digits).replace(/0+$/, "").replace(/\.$/, "");
  }
  const pct = (r) => (r === null || r === undefined) ? "—" : (r * 100).toFixed(1) + "%";
  function ms(v) {
    if (v === null || v === undefined) return "—";
    return v >= 1000 ? (v / 1000).toFixed(2) + " s" : Math.round(v) + " ms";
  }
  const when = (iso) => iso ? iso.replace("T", " ").replace("Z", "") : "";
  const provider = (id) => PROVIDERS[id] || id;
  function shortDay(day) {
    const [, m, d] = day.split("-");
    return MONTHS[Number(m) - 1] + " " + Number(d);
  }
  const plural = (n, word) => int(n) + " " + word + (n === 1 ? "" : "s");
  // Calls cut short before the provider reported their usage have estimated tokens:
  // every figure that holds some is marked "≈" (the API's estimated_calls / estimated).
  const APPROX = "≈";
  const ESTIMATED = "Estimated: cut short before the provider reported its usage";
  const approx = (text, estimated) => estimated ? APPROX + text : text;

  // --- the period --------------------------------------------------------------------

  function periodFromUrl() {
    const q = new URLSearchParams(location.search);
    const from = q.get("from"), to = q.get("to"), since = q.get("since");
    if (from || to) return { preset: "custom", from: from || "", to: to || "" };
    if (since && PRESETS[since]) return { preset: since };
    return { preset: "30d" };
  }

  function periodQuery(p) {
    const q = new URLSearchParams();
    if (p.preset === "custom") {
      q.set("since", p.from || "all");
      if (p.to) q.set("until", p.to);
    } else {
      q.set("since", p.preset);
    }
    return q;
  }

  function currentPeriod() {
    const preset = ($('input[name="period"]:checked') || {}).value || "30d";
    if (preset !== "custom") return { preset };
    return { preset, from: $("#from").value, to: $("#to").value };
  }

  function syncControls(p) {
    const radio = $("#p-" + p.preset);
    if (radio) radio.checked = true;
    $("#custom-range").hidden = p.preset !== "custom";
    if (p.preset === "custom") { $("#from").value = p.from || ""; $("#to").value = p.to || ""; }
  }

  function describe(p, period) {
    if (p.preset !== "custom") {
      const start = period.since ? " (since " + when(period.since).slice(0, 16) + " UTC)" : "";
      return "Showing " + PRESETS[p.preset] + start + ".";
    }
    const from = p.from ? p.from : "the first call";
    const to = p.to ? p.to : "now";
    return "Showing " + from + " to " + to + " (UTC days, both included).";
  }

  function pushUrl(p) {
    const q = new URLSearchParams();
    if (p.preset === "custom") { if (p.from) q.set("from", p.from); if (p.to) q.set("to", p.to); }
    else if (p.preset !== "30d") q.set("since", p.preset);
    const url = location.pathname + (q.toString() ? "?" + q : "");
    if (url !== location.pathname + location.search) history.replaceState(null, "", url);
  }

  // --- loading -----------------------------------------------------------------------

  async function load(p) {
    if (p.preset === "custom" && p.from && p.to && p.from > p.to) {
      $("#period-note").textContent = "“From” is after “To”: pick a start day on or before the end day.";
      $("#period-note").classList.add("error-text");
      return;
    }
    $("#period-note").classList.remove("error-text");
    const mine = ++seq;
    const q = periodQuery(p);
    $("#export").href = "/api/usage/export.csv?" + q;
    q.set("recent", String(RECENT));
    const content = $("#content");
    content.setAttribute("aria-busy", "true");
    content.classList.add("is-loading");
    try {
      const data = await api("GET", "/api/usage?" + q);
      if (mine !== seq) return;
      showBanner("");
      render(p, data);
    } catch (e) {
      if (mine !== seq) return;
      showBanner("Could not load usage.\n" + e.message);
      $("#period-note").textContent = "";
    } finally {
      if (mine === seq) {
        content.setAttribute("aria-busy", "false");
        content.classList.remove("is-loading");
        document.body.dataset.loaded = String(mine);
      }
    }
  }

  // --- rendering ---------------------------------------------------------------------

  function render(p, data) {
    const t = data.totals;
    $("#period-note").textContent = describe(p, data.period);
    const empty = t.calls === 0;
    $("#empty").hidden = !empty;
    $("#content").hidden = empty;
    if (empty) return renderEmpty(data.ledger || { calls: 0 });
    renderTotals(t);
    lastSeries = data.series;
    drawChart(data.series);
    renderSeriesTable(data.series);
    renderBreakdown($("#by-provider"), "provider", data.by_provider);
    renderBreakdown($("#by-model"), "model", data.by_model);
    renderBreakdown($("#by-agent"), "agent", data.by_agent);
    renderBreakdown($("#by-key"), "key", data.by_key || []);
    renderBreakdown($("#by-day"), "day", data.by_day);
    renderRecent(data.recent, t.calls);
  }

  function renderEmpty(ledger) {
    const action = $("#empty-action");
    action.replaceChildren();
    if (!ledger.calls) {
      $("#empty-title").textContent = "No calls recorded yet";
      $("#empty-text").textContent = "Every call Synapse makes, from the CLI, this web app, agents or the gateway, " +
        "shows up here with its tokens, its cost and what the prompt cache saved.";
      action.append(el("a", { class: "btn btn-primary", href: "/settings/models", text: "Connect a provider" }));
    } else {
      $("#empty-title").textContent = "No calls in this period";
      $("#empty-text").textContent = "The ledger holds " + plural(ledger.calls, "call") + ", the latest on " +
        when(ledger.last).slice(0, 10) + " (UTC). Pick a longer period to see them.";
      action.append(el("button", { type: "button", class: "btn btn-primary", text: "Show all time",
        onclick: () => { syncControls({ preset: "all" }); pushUrl({ preset: "all" }); load({ preset: "all" }); } }));
    }
  }

  function setTotal(key, text) {
    const node = $('[data-total="' + key + '"]');
    if (node) node.textContent = text;
  }

  function renderTotals(t) {
    const est = t.estimated_calls || 0;
    setTotal("calls", int(t.calls));
    setTotal("errors", t.errors ? plural(t.errors, "error") : "no errors");
    setTotal("cost", t.cost_usd === null ? "price unknown" : approx(usd(t.cost_usd), est && t.cost_usd > 0));
    setTotal("unpriced", t.unpriced_calls ? "+ price unknown for " + plural(t.unpriced_calls, "call") : "every call priced");
    setTotal("savings", t.savings_usd === null ? "—" : usd(t.savings_usd));
    setTotal("cache_hit_rate", pct(t.cache_hit_rate));
    const prompt = t.input_tokens + t.cache_read_tokens + t.cache_write_tokens;
    setTotal("cache_hit_note", int(t.cache_read_tokens) + " of " + int(prompt) + " input tokens read from cache");
    setTotal("response_cache_hits", plural(t.response_cache_hits, "hit"));
    setTotal("response_cache_hit_rate", pct(t.response_cache_hit_rate) + " of calls answered from the response cache");
    for (const k of ["input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens"]) {
      setTotal(k, approx(int(t[k]), estimable(k, t[k], est)));
    }
    const note = $("#estimate-note");
    note.hidden = !est;
    note.textContent = est ? APPROX + " " + plural(est, "call") + " cut short: their tokens are estimated" : "";
  }

  // The token columns an estimate fills (cache reads and writes are only ever reported);
  // a zero is shown plain: nothing was estimated into it.
  const ESTIMABLE = new Set(["input_tokens", "output_tokens", "reasoning_tokens"]);
  const estimable = (col, value, estimated) => Boolean(estimated) && ESTIMABLE.has(col) && value > 0;

  const NUMBERS = [
    ["calls", "Calls", int],
    ["input_tokens", "Input", int],
    ["output_tokens", "Output", int],
    ["cache_read_tokens", "Cache read", int],
    ["cache_write_tokens", "Cache write", int],
    ["reasoning_tokens", "Reasoning", int],
  ];
  const HEADS = { provider: "Provider", model: "Model", agent: "Agent", key: "API key", day: "Day" };

  // A model id on one line, or wrapped only after a "/" (org/model), never inside a name;
  // a part too long for the column ends in an ellipsis, and the whole id shows on hover.
  function modelId(id, attrs) {
    const span = el("span", { class: "model-id", title: id, ...(attrs || {}) });
    id.split(/(?<=\/)/).forEach((part, i) => {
      if (i) span.append(el("wbr"));
      span.append(el("span", { class: "seg", text: part }));
    });
    return span;
  }

  function th(text, cls) { return el("th", { scope: "col", class: cls, text }); }
  function td(col, text, cls) { return el("td", { "data-col": col, class: cls, text }); }

  function costCell(row, estimated) {
    // "$0.0123 + price unknown for 2 calls" (the API's cost_label): the note on its own line
    const unknown = row.cost_usd === null || row.cost_usd === undefined;
    estimated = Boolean(estimated) && row.cost_usd > 0;  // an unknown or zero price holds no estimate
    const label = row.cost_label || "";
    const cut = label.indexOf(" + ");
    if (unknown || cut < 0) return mark(el("td", { "data-col": "cost", class: "num" + (unknown ? " unknown" : ""),
      text: unknown ? label : approx(label, estimated) }), estimated && !unknown);
    return mark(el("td", { "data-col": "cost", class: "num" }, el("span", { text: approx(label.slice(0, cut), estimated) }),
      el("span", { class: "sub unknown-note", text: label.slice(cut + 1) })), estimated);
  }

  // A cell that holds estimated tokens says so on hover.
  function mark(cell, estimated) {
    if (estimated) { cell.classList.add("approx"); cell.title = ESTIMATED; }
    return cell;
  }

  // Two header rows: the five token columns sit under one "Tokens" heading.
  function header(before, after) {
    const top = el("tr"), bottom = el("tr");
    const span = (cell) => { cell.setAttribute("rowspan", "2"); return cell; };
    for (const [label, cls] of before) top.append(span(th(label, cls)));
    top.append(el("th", { scope: "colgroup", colspan: "5", class: "group", text: "Tokens" }));
    for (const [label, cls] of after) top.append(span(th(label, cls)));
    for (const label of ["Input", "Output", "Cache read", "Cache write", "Reasoning"]) bottom.append(th(label, "num"));
    return el("thead", null, top, bottom);
  }

  function renderBreakdown(table, by, rows) {
    const head = header([[HEADS[by]], ["Calls", "num"]],
      [["Cost", "num"], ["Saved", "num"], ["Cache hit rate", "num"], ["Resp. cache hits", "num"]]);
    const body = el("tbody");
    for (const r of rows) {
      const key = r[by] === null ? "" : r[by];
      let name;
      if (by === "provider") name = el("th", { scope: "row", "data-col": "name", text: provider(r.provider) });
      else if (by === "model") name = el("th", { scope: "row", "data-col": "name", class: "model" }, modelId(r.model),
        el("span", { class: "sub", text: provider(r.provider) }));
      else if (by === "agent") name = el("th", { scope: "row", "data-col": "name", class: r.agent === null ? "none" : null,
        text: r.agent === null ? "no agent" : r.agent });
      else if (by === "key") name = el("th", { scope: "row", "data-col": "name", class: r.key === null ? "none" : null,
        text: r.key === null ? "no key (not through the gateway)" : r.key });
      else name = el("th", { scope: "row", "data-col": "name", text: r.day });
      const tr = el("tr", { "data-key": key }, name);
      const est = r.estimated_calls > 0;
      for (const [col, , fmt] of NUMBERS) {
        const marked = estimable(col, r[col], est);
        tr.append(mark(td(col, approx(fmt(r[col]), marked), "num"), marked));
      }
      tr.append(costCell(r, est), td("savings", usd(r.savings_usd), "num"), td("cache_hit_rate", pct(r.cache_hit_rate), "num"),
        td("response_cache_hits", int(r.response_cache_hits), "num"));
      body.append(tr);
    }
    table.replaceChildren(head, body);
  }

  function renderRecent(rows, total) {
    const table = $("#recent");
    const head = header([["Time"], ["Model"], ["Agent"]],
      [["Cost", "num"], ["Saved", "num"], ["Latency", "num"], ["Outcome"], ["Resp. cache"]]);
    const body = el("tbody");
    for (const r of rows) {
      const ok = r.outcome === "ok";
      const est = Boolean(r.estimated);
      const tokens = (col) => mark(td(col, approx(int(r[col]), estimable(col, r[col], est)), "num"), estimable(col, r[col], est));
      body.append(el("tr", { "data-id": String(r.id), "data-estimated": est ? "true" : null },
        el("td", { "data-col": "time" }, el("time", { datetime: r.time },
          el("span", { class: "time-day", text: when(r.time).slice(0, 10) }), " ", el("span", { text: when(r.time).slice(11) }))),
        el("td", { class: "model" }, modelId(r.model, { "data-col": "model" }),
          el("span", { "data-col": "provider", class: "sub", text: provider(r.provider) })),
        td("agent", r.agent === null ? "—" : r.agent, r.agent === null ? "none" : null),
        tokens("input_tokens"),
        tokens("output_tokens"),
        td("cache_read_tokens", int(r.cache_read_tokens), "num"),
        td("cache_write_tokens", int(r.cache_write_tokens), "num"),
        tokens("reasoning_tokens"),
        costCell(r, est),
        td("savings", usd(r.savings_usd), "num"),
        el("td", { class: "num latency" }, el("span", { "data-col": "latency", text: ms(r.latency_ms) }),
          el("span", { class: "sub", title: "time to the first token" }, "TTFT ", el("span", { "data-col": "ttft", text: ms(r.ttft_ms) }))),
        el("td", { "data-col": "outcome" }, el("span", { class: "badge " + (ok ? "badge-ok" : "badge-error"), text: r.outcome })),
        td("response_cache_hit", r.response_cache_hit ? "hit" : "—", r.response_cache_hit ? "hit" : "none"),
      ));
    }
    table.replaceChildren(head, body);
    $("#recent-note").textContent = total > rows.length
      ? "The latest " + rows.length + " of " + plural(total, "call") + " in the period; the CSV has them all."
      : plural(total, "call") + " in the period, the latest first.";
  }

  function renderSeriesTable(series) {
    const body = $("#series-table tbody");
    body.replaceChildren(...series.map((d) => el("tr", { "data-day": d.day },
      el("th", { scope: "row", text: d.day }),
      td("calls", int(d.calls), "num"),
      el("td", { "data-col": "cost", class: "num", text: d.cost_usd === null ? "price unknown" : approx(usd(d.cost_usd), d.estimated_calls && d.cost_usd > 0) + (d.unpriced_calls ? " + price unknown for " + plural(d.unpriced_calls, "call") : "") }),
      td("savings", usd(d.savings_usd), "num"))));
  }

  // --- the chart ---------------------------------------------------------------------

  function niceMax(v) {
    if (!(v > 0)) return 0.01;
    const mag = Math.pow(10, Math.floor(Math.log10(v)));
    for (const step of [1, 2, 2.5, 5, 10]) if (v <= step * mag) return step * mag;
    return 10 * mag;
  }

  function axisLabel(v, max) {
    if (v === 0) return "$0";
    const digits = max >= 10 ? 0 : max >= 1 ? 2 : Math.min(6, Math.max(2, 1 - Math.floor(Math.log10(max)) + 1));
    return "$" + v.toFixed(digits);
  }

  function drawChart(series) {
    const box = $("#chart");
    const width = Math.max(280, Math.round(box.clientWidth || 600));
    const height = box.clientHeight || 240;
    if (!series.length) { box.replaceChildren(el("p", { class: "chart-empty", text: "No days to chart." })); return; }
    const cost = series.map((d) => d.cost_usd || 0);
    const saved = series.map((d) => d.savings_usd || 0);
    const max = niceMax(Math.max(...cost, ...saved));
    const left = 64, right = 12, top = 12, bottom = 28;
    const plotW = width - left - right, plotH = height - top - bottom;
    const n = series.length;
    const slot = plotW / n;
    const bar = Math.max(1, Math.min(22, slot * 0.36));
    const y = (v) => top + plotH - (v / max) * plotH;
    const totalCost = cost.reduce((a, b) => a + b, 0), totalSaved = saved.reduce((a, b) => a + b, 0);
    let peak = 0;
    cost.forEach((c, i) => { if (c > cost[peak]) peak = i; });
    const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img",
      "aria-labelledby": "chart-svg-title chart-svg-desc", class: "chart-svg" });
    root.append(svg("title", { id: "chart-svg-title" }, "Cost and savings per day"));
    root.append(svg("desc", { id: "chart-svg-desc" },
      `Bars for each UTC day from ${series[0].day} to ${series[n - 1].day}: cost in total ${usd(totalCost)}, ` +
      `saved by the prompt cache ${usd(totalSaved)}` + (cost[peak] > 0 ? `; the costliest day was ${series[peak].day} at ${usd(cost[peak])}` : "") +
      ". The numbers are in the table below the chart."));
    const grid = svg("g", { class: "grid", "aria-hidden": "true" });
    for (let i = 0; i <= 4; i++) {
      const v = (max * i) / 4, yy = Math.round(y(v)) + 0.5;
      grid.append(svg("line", { x1: left, x2: width - right, y1: yy, y2: yy }));
      grid.append(svg("text", { x: left - 8, y: yy + 4, "text-anchor": "end" }, axisLabel(v, max)));
    }
    root.append(grid);
    const bars = svg("g", { class: "bars" });
    series.forEach((d, i) => {
      const cx = left + slot * (i + 0.5);
      const g = svg("g", { class: "day" });
      g.append(svg("title", {}, `${d.day}: cost ${d.cost_usd === null ? "price unknown" : usd(d.cost_usd)}, saved ${usd(d.savings_usd)}, ${plural(d.calls, "call")}`));
      g.append(svg("rect", { class: "hit", x: left + slot * i, y: top, width: slot, height: plotH }));
      const hc = Math.max(0, y(0) - y(cost[i])), hs = Math.max(0, y(0) - y(saved[i]));
      g.append(svg("rect", { class: "bar-cost", x: cx - bar - (bar > 2 ? 1 : 0), y: y(0) - hc, width: bar, height: hc, rx: bar > 6 ? 2 : 0 }));
      g.append(svg("rect", { class: "bar-savings", x: cx + (bar > 2 ? 1 : 0), y: y(0) - hs, width: bar, height: hs, rx: bar > 6 ? 2 : 0 }));
      bars.append(g);
    });
    root.append(bars);
    const axis = svg("g", { class: "axis", "aria-hidden": "true" });
    axis.append(svg("line", { x1: left, x2: width - right, y1: y(0) + 0.5, y2: y(0) + 0.5 }));
    const labels = Math.max(1, Math.min(n, Math.floor(plotW / 70)));
    const step = Math.max(1, Math.ceil((n - 1) / Math.max(1, labels - 1)));
    for (let i = 0; i < n - 1; i += step) {
      if ((n - 1 - i) < step * 0.6) continue;  // leave room for the last label
      axis.append(svg("text", { x: left + slot * (i + 0.5), y: height - 8, "text-anchor": "middle" }, shortDay(series[i].day)));
    }
    axis.append(svg("text", { x: left + slot * (n - 0.5), y: height - 8, "text-anchor": n > 3 ? "end" : "middle" }, shortDay(series[n - 1].day)));
    root.append(axis);
    box.replaceChildren(root);
  }

  let resizeTimer = null;
  let lastWidth = 0;
  if ("ResizeObserver" in window) {
    new ResizeObserver((entries) => {
      const w = Math.round(entries[0].contentRect.width);
      if (w === lastWidth) return;
      lastWidth = w;
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => { if (lastSeries.length) drawChart(lastSeries); }, 60);
    }).observe($("#chart"));
  }

  // --- controls ----------------------------------------------------------------------

  for (const radio of $$('input[name="period"]')) {
    radio.addEventListener("change", () => {
      const custom = radio.value === "custom";
      $("#custom-range").hidden = !custom;
      if (custom) {
        if (!$("#from").value) {
          const d = new Date(Date.now() - 6 * 86400e3);
          $("#from").value = d.toISOString().slice(0, 10);
        }
        if (!$("#to").value) $("#to").value = new Date().toISOString().slice(0, 10);
        return;  // wait for Apply
      }
      const p = currentPeriod();
      pushUrl(p);
      load(p);
    });
  }

  $("#period-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const p = currentPeriod();
    if (p.preset !== "custom") return;
    pushUrl(p);
    load(p);
  });

  const initial = periodFromUrl();
  syncControls(initial);
  load(initial);
})();
