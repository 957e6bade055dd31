// Settings → Models. Plain JS, no build step. Everything comes from /api.
"use strict";
(function () {
  const { $, el, api, showBanner } = window.Synapse;
  const cards = new Map(); // provider id -> {el, data}
  let pollTimer = null;
  let bedrockProfiles = null; // last list fetched for the dropdown

  // --- status ------------------------------------------------------------------------

  function statusWords(st, data) {
    if (st.state === "ok" && data && data.on_demand) return "Ready · " + st.models + " loaded";
    if (st.state === "ok") return "Connected · " + st.models + (st.models === 1 ? " model" : " models");
    if (st.state === "checking") return "Checking…";
    if (st.state === "error") return st.reason || "Failed";
    return "Not connected";
  }

  function checkedAt(ts) {
    if (!ts) return "";
    const d = new Date(ts * 1000);
    const today = d.toDateString() === new Date().toDateString();
    const time = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    return "Checked " + (today ? "at " + time : d.toLocaleDateString() + " " + time) + ".";
  }

  function applyStatus(card, data) {
    const st = data.status;
    card.el.dataset.state = st.state;
    const dot = $(".dot", card.el);
    dot.dataset.state = st.state;
    dot.setAttribute("aria-label", statusWords(st, data));
    const text = $(".status-text", card.el);
    text.dataset.state = st.state;
    text.textContent = statusWords(st, data);
    const detail = $(".status-detail", card.el);
    detail.dataset.state = st.state;
    let words = "";
    if (st.state === "error") words = st.detail && st.detail !== st.reason ? st.detail : "";
    else if (st.state === "not_configured") words = st.detail || (data.on_demand ? "Runs models in this process with transformers; press Check to look for them." : "");
    else if (st.state === "checking") words = "Asking " + data.label + "…";
    else if (st.state === "ok") words = (data.env.length ? "Key from " + data.env.join(", ") + ". " : "") + (st.detail ? st.detail + ". " : "") + checkedAt(st.checked_at);
    const loads = (data.loading || []).map((l) => l.detail);
    if (loads.length) words = loads.join(" · ") + (words ? " — " + words : "");
    detail.textContent = words;
    const check = $(".btn-check", card.el);
    if (check) check.disabled = st.state === "checking" || !(data.configured || data.on_demand);
    const remove = $(".btn-danger", card.el);
    if (remove) remove.hidden = !data.saved;
    for (const f of data.fields) {
      if (f.kind !== "secret") continue;
      const note = card.el.querySelector('[data-note="' + f.setting + '"]');
      if (note) {
        note.textContent = f.masked ? "Saved: " + f.masked + (f.source.startsWith("env:") ? " (from " + f.source.slice(4) + ")" : "") + " — leave empty to keep it" : "";
      }
      const input = card.el.querySelector('[data-setting="' + f.setting + '"]');
      if (input) input.placeholder = secretPlaceholder(f);
    }
    const summary = $(".advanced summary", card.el);
    if (summary) {
      const inUse = data.fields.some((f) => f.advanced && f.value);
      summary.textContent = "Advanced" + (inUse ? " · custom endpoint" : "");
    }
    if (card.afterSave) saveOutcome(card, st);
  }

  function secretPlaceholder(f) {
    return f.masked ? "Saved — paste a new key to replace it" : (f.placeholder || "paste your key");
  }

  // What the form says after Save: never "Saved." next to a red status. The key was
  // stored either way; the status line says why it does not work.
  function saveOutcome(card, st) {
    const msg = card.msg;
    if (st.state === "checking") { msg.className = "form-msg"; msg.textContent = "Saved. Checking…"; return; }
    card.afterSave = false;
    if (st.state === "ok") { msg.className = "form-msg"; msg.textContent = "Saved."; return; }
    msg.className = "form-msg error-text";
    msg.textContent = st.state === "error" ? "Not connected: fix what the status above says, then Save again." : "";
    if (st.state === "error" && st.reason === "Invalid key") {
      const key = card.el.querySelector('[data-kind="secret"]');
      if (key) key.setAttribute("aria-invalid", "true");
    }
  }

  // --- cards -------------------------------------------------------------------------

  function fieldInput(data, f) {
    const id = data.id + "--" + f.setting;
    const wrap = el("div", { class: "field" });
    wrap.append(el("label", { for: id, text: f.label + (f.required ? "" : " (optional)") }));
    if (f.kind === "select") {
      const select = el("select", { id, name: f.setting, "data-setting": f.setting, "data-kind": "select" });
      const other = el("input", { type: "text", class: "other-input", id: id + "--other", name: f.setting + "__other",
        "aria-label": f.label + " id or ARN", placeholder: "inference profile id or ARN", autocomplete: "off", spellcheck: "false", hidden: true });
      select.addEventListener("change", () => { other.hidden = select.value !== "__other__"; if (!other.hidden) other.focus(); });
      wrap.append(select, other);
      fillProfiles(select, other, f.value, bedrockProfiles || []);
    } else {
      const type = f.kind === "secret" ? "password" : "text";
      const input = el("input", {
        id, type, name: f.setting, "data-setting": f.setting, "data-kind": f.kind,
        placeholder: f.kind === "secret" ? secretPlaceholder(f) : f.placeholder,
        autocomplete: f.kind === "secret" ? "off" : "off", spellcheck: "false", autocapitalize: "none",
        inputmode: f.kind === "url" ? "url" : null,
      });
      if (f.kind !== "secret") input.value = f.value === null || f.value === undefined ? "" : String(f.value);
      wrap.append(input);
    }
    if (f.help) wrap.append(el("span", { class: "help", text: f.help }));
    if (f.kind === "secret") wrap.append(el("span", { class: "saved-note", "data-note": f.setting }));
    return wrap;
  }

  function fillProfiles(select, other, current, profiles) {
    select.textContent = "";
    select.append(el("option", { value: "", text: "none — direct invocation" }));
    let matched = !current;
    for (const p of profiles) {
      const opt = el("option", { value: p.id, text: p.name && p.name !== p.id ? p.name + " (" + p.id + ")" : p.id });
      if (current && (current === p.id || current === p.arn)) { opt.selected = true; matched = true; }
      select.append(opt);
    }
    select.append(el("option", { value: "__other__", text: "Other: type an id or ARN…" }));
    if (!matched) { select.value = "__other__"; other.hidden = false; other.value = current; }
    else if (!current) { select.value = ""; other.hidden = true; }
  }

  async function loadProfiles(card) {
    const select = card.el.querySelector('select[data-kind="select"]');
    if (!select) return;
    const other = select.nextElementSibling;
    try {
      const res = await api("GET", "/api/providers/bedrock/inference-profiles");
      bedrockProfiles = res.profiles;
      const field = card.data.fields.find((f) => f.kind === "select");
      const current = select.value === "__other__" ? other.value : (select.value || (field ? field.value : ""));
      fillProfiles(select, other, current, res.profiles);
    } catch (e) { /* a typed value still works */ }
  }

  function buildCard(data) {
    const form = el("form", { novalidate: true, "aria-label": data.label + " settings" });
    const msg = el("span", { class: "form-msg", "aria-live": "polite" });
    const card = { el: null, data, msg, afterSave: false };
    for (const f of data.fields) if (!f.advanced) form.append(fieldInput(data, f));
    const advanced = data.fields.filter((f) => f.advanced);
    if (advanced.length) {
      // Open when an override is in use, so a changed endpoint is never out of sight.
      const inUse = advanced.some((f) => f.value);
      const box = el("details", { class: "advanced", open: inUse },
        el("summary", { text: "Advanced" + (inUse ? " · custom endpoint" : "") }));
      for (const f of advanced) box.append(fieldInput(data, f));
      form.append(box);
    }
    const save = el("button", { type: "submit", class: "btn btn-primary", text: data.on_demand ? "Check" : "Save" });
    const actions = el("div", { class: "actions" }, save);
    if (!data.on_demand) {
      actions.append(el("button", { type: "button", class: "btn btn-check", text: "Check again", onclick: () => verify(card, msg) }));
      const remove = el("button", { type: "button", class: "btn btn-danger", text: "Remove" });
      let armed = null;
      remove.addEventListener("click", () => {
        if (!armed) {
          remove.textContent = "Confirm remove"; remove.classList.add("confirm");
          armed = setTimeout(() => { armed = null; remove.textContent = "Remove"; remove.classList.remove("confirm"); }, 4000);
          return;
        }
        clearTimeout(armed); armed = null; remove.textContent = "Remove"; remove.classList.remove("confirm");
        removeProvider(card, msg);
      });
      actions.append(remove);
    }
    form.append(actions, msg);
    form.addEventListener("submit", (ev) => { ev.preventDefault(); save_(card, form, msg); });

    const meta = el("div", { class: "card-meta" });
    if (data.key_hint && data.key_hint.endsWith("…")) meta.append(el("span", {}, "Key format ", el("code", { text: data.key_hint })));
    else if (data.key_hint) meta.append(el("span", { text: "Key: " + data.key_hint }));
    if (data.route_prefix) meta.append(el("span", {}, "Models as ", el("code", { text: data.route_prefix + "<name>" })));
    if (data.console_url) meta.append(el("a", { href: data.console_url, target: "_blank", rel: "noopener noreferrer", text: (data.console_label || "Provider site") + " ↗" }));

    card.el = el("article", { class: "card", id: "card-" + data.id, "data-provider": data.id, "aria-labelledby": "title-" + data.id },
      el("div", { class: "card-head" },
        el("span", { class: "dot", role: "img" }),
        el("h3", { id: "title-" + data.id, text: data.label })),
      el("p", { class: "status-line", "aria-live": "polite" },
        el("span", { class: "status-text" }), el("span", { class: "status-detail" })),
      meta, form);
    cards.set(data.id, card);
    applyStatus(card, data);
    return card;
  }

  function markInvalid(card, setting) {
    for (const input of card.el.querySelectorAll("[data-setting]")) input.removeAttribute("aria-invalid");
    if (!setting) return;
    const input = card.el.querySelector('[data-setting="' + setting + '"]');
    if (input) { input.setAttribute("aria-invalid", "true"); input.focus(); }
  }

  async function save_(card, form, msg) {
    const values = {};
    for (const input of form.querySelectorAll("[data-setting]")) {
      const setting = input.dataset.setting;
      let v = input.value;
      if (input.dataset.kind === "select" && v === "__other__") v = input.nextElementSibling.value;
      if (input.dataset.kind === "secret" && !v.trim()) continue; // keep the saved key
      values[setting] = v.trim();
    }
    msg.className = "form-msg"; msg.textContent = "Saving…";
    try {
      const data = await api("PUT", "/api/providers/" + card.data.id, values);
      for (const input of form.querySelectorAll('[data-kind="secret"]')) input.value = "";
      markInvalid(card, null);
      msg.textContent = "";
      card.afterSave = !data.on_demand;
      update(data);
      schedule(150);
    } catch (e) {
      msg.className = "form-msg error-text"; msg.textContent = e.message;
      markInvalid(card, e.data && e.data.field);
    }
  }

  async function verify(card, msg) {
    card.afterSave = false;
    msg.className = "form-msg"; msg.textContent = "";
    try { update(await api("POST", "/api/providers/" + card.data.id + "/verify")); schedule(150); }
    catch (e) { msg.className = "form-msg error-text"; msg.textContent = e.message; }
  }

  async function removeProvider(card, msg) {
    try {
      const data = await api("DELETE", "/api/providers/" + card.data.id);
      for (const input of card.el.querySelectorAll("[data-setting]")) {
        const f = data.fields.find((x) => x.setting === input.dataset.setting);
        if (input.dataset.kind === "select") fillProfiles(input, input.nextElementSibling, "", bedrockProfiles || []);
        else input.value = f && f.kind !== "secret" ? String(f.value || "") : "";
      }
      card.afterSave = false;
      markInvalid(card, null);
      msg.className = "form-msg"; msg.textContent = "Removed.";
      update(data);
      refreshModels();
    } catch (e) { msg.className = "form-msg error-text"; msg.textContent = e.message; }
  }

  function update(data) {
    const card = cards.get(data.id);
    if (!card) return;
    const was = card.data.status.state;
    card.data = data;
    applyStatus(card, data);
    if (data.id === "bedrock" && data.status.state === "ok" && was !== "ok") loadProfiles(card);
  }

  // --- model selector ----------------------------------------------------------------

  let modelsSig = "";
  function renderModels(res) {
    const groups = res.groups.map((g) => ({ ...g, models: g.models.filter((m) => !m.embedding) })).filter((g) => g.models.length);
    const sig = JSON.stringify([groups, res.model, res.model_warning]);
    if (sig === modelsSig) return;
    modelsSig = sig;
    const select = $("#default-model");
    const hasAny = groups.length > 0 || !!res.model;
    $("#selector-empty").hidden = hasAny;
    $("#selector-body").hidden = !hasAny;
    select.textContent = "";
    const labels = {};
    let found = false;
    select.append(el("option", { value: "", text: "Choose a default model…" }));
    for (const g of groups) {
      const og = el("optgroup", { label: g.label });
      for (const m of g.models) {
        labels[m.id] = m.label;
        const opt = el("option", { value: m.id, text: m.label ? m.id + " — " + m.label : m.id });
        if (m.id === res.model) { opt.selected = true; found = true; }
        og.append(opt);
      }
      select.append(og);
    }
    if (res.model && !found) {
      select.append(el("option", { value: res.model, text: res.model + " (current)", selected: true }));
    }
    select.value = res.model || "";
    select.dataset.labels = JSON.stringify(labels);
    noteFor(select.value, labels, false, res.model_warning);
  }

  function noteFor(model, labels, saved, warning) {
    const note = $("#model-note");
    note.classList.toggle("warn", !!warning);
    $("#default-model").toggleAttribute("aria-invalid", !!warning);
    if (warning) { note.textContent = warning; return; }
    if (!model) { note.textContent = "No default yet: pick one."; return; }
    const label = labels[model];
    note.textContent = (saved ? "Saved. " : "") + (label ? "Best for: " + label : "Default: " + model);
  }

  async function refreshModels() {
    try { renderModels(await api("GET", "/api/models")); } catch (e) { /* shown by the providers refresh */ }
  }

  // --- loading and polling -----------------------------------------------------------

  async function refresh() {
    pollTimer = null;
    let res;
    try {
      res = await api("GET", "/api/providers");
      showBanner("");
      if (document.body.classList.contains("settings-broken")) {
        document.body.classList.remove("settings-broken");
        loadGeneral();
      }
    } catch (e) {
      const broken = !!(e.data && e.data.kind === "settings");
      document.body.classList.toggle("settings-broken", broken);
      showBanner(broken ? "Synapse cannot read its settings file.\n" + e.message : e.message);
      schedule(broken ? 2000 : 5000);
      return;
    }
    if (cards.size === 0) {
      const cloud = $("#cards-cloud"), local = $("#cards-local");
      cloud.textContent = ""; local.textContent = "";
      for (const p of res.providers) (p.local ? local : cloud).append(buildCard(p).el);
      const bedrock = cards.get("bedrock");
      if (bedrock && bedrock.data.status.state === "ok") loadProfiles(bedrock);
    } else {
      for (const p of res.providers) update(p);
    }
    await refreshModels();
    const loadingModel = (p) => (p.loading || []).some((l) => l.stage !== "ready" && l.stage !== "failed");
    const pending = res.pending || res.providers.some((p) => p.status.state === "checking" || loadingModel(p));
    if (pending) schedule(350);
  }

  function schedule(ms) {
    if (pollTimer) clearTimeout(pollTimer);
    pollTimer = setTimeout(refresh, ms);
  }

  $("#default-model").addEventListener("change", async (ev) => {
    const select = ev.target;
    const labels = JSON.parse(select.dataset.labels || "{}");
    try {
      const res = await api("PUT", "/api/settings/model", { model: select.value });
      noteFor(res.model, labels, true);
      modelsSig = "";
    } catch (e) { noteFor(select.value, labels, false, e.message); modelsSig = ""; }
  });

  // --- general settings --------------------------------------------------------------

  async function loadGeneral() {
    try {
      const g = await api("GET", "/api/settings");
      $("#prompt_cache_enabled").checked = !!g.prompt_cache_enabled;
      $("#embedding_model").value = g.embedding_model || "";
    } catch (e) { /* the banner shows settings errors */ }
  }

  $("#general-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const msg = $("#general-msg");
    msg.className = "form-msg"; msg.textContent = "Saving…";
    try {
      await api("PUT", "/api/settings", {
        prompt_cache_enabled: $("#prompt_cache_enabled").checked,
        embedding_model: $("#embedding_model").value.trim(),
      });
      msg.textContent = "Saved.";
    } catch (e) { msg.className = "form-msg error-text"; msg.textContent = e.message; }
  });

  refresh();
  loadGeneral();
})();
