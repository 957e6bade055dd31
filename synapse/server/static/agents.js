// The Agents page: the list on the left, the selected agent's form on the right, over /api/v1/agents.
"use strict";
(function () {
  const { $, el, api, showBanner } = window.Synapse;
  const state = { agents: [], tools: [], models: null, current: null, dirty: false };

  function agentFromForm() {
    const num = (id) => { const v = $(id).value.trim(); return v === "" ? null : Number(v); };
    return {
      name: $("#f-name").value,
      description: $("#f-description").value,
      system_prompt: $("#f-system").value,
      model: $("#f-model").value || "(default)",
      tools: [...document.querySelectorAll("#tool-list input:checked")].map((i) => i.value),
      max_turns: num("#f-max-turns") ?? 30,
      temperature: num("#f-temperature"),
      max_total_cost_usd: num("#f-cost"),
      response_cache: $("#f-cache").value,
      memory: $("#f-memory").checked,
      memory_tool: $("#f-memory-tool").checked,
    };
  }

  function clearErrors() {
    for (const e of document.querySelectorAll(".field-error")) e.textContent = "";
    for (const i of document.querySelectorAll("[aria-invalid]")) i.removeAttribute("aria-invalid");
  }

  function showFieldError(field, message) {
    const slot = document.querySelector('.field-error[data-for="' + field + '"]');
    if (slot) {
      slot.textContent = message;
      const input = document.querySelector('[name="' + field + '"]');
      if (input) { input.setAttribute("aria-invalid", "true"); input.focus(); }
    } else {
      showBanner(message);
    }
  }

  function renderTools(selected) {
    const all = selected.includes("all");
    const box = $("#tool-list");
    box.textContent = "";
    for (const t of state.tools) {
      const id = "tool-" + t.name;
      const input = el("input", { type: "checkbox", id, value: t.name });
      input.checked = all || selected.includes(t.name);
      input.addEventListener("change", () => { state.dirty = true; });
      box.append(el("div", { class: "tool-choice" }, input,
        el("label", { for: id }, el("span", { text: t.name }), el("span", { class: "d", text: t.note || t.description }))));
    }
  }

  function fillForm(a) {
    clearErrors();
    showBanner("");
    state.current = a;
    const isNew = !a.id;
    $("#form-title").textContent = isNew ? "New agent" : a.name;
    $("#f-name").value = a.name || "";
    $("#f-description").value = a.description || "";
    $("#f-system").value = a.system_prompt || "";
    const model = a.model && a.model !== "(default)" ? a.model : "";
    window.SynapseModels.fill($("#f-model"), state.models || { groups: [] }, "(default) — the default model from Settings", model);
    renderTools(a.tools || []);
    $("#f-max-turns").value = a.max_turns ?? 30;
    $("#f-temperature").value = a.temperature ?? "";
    $("#f-cost").value = a.max_total_cost_usd ?? "";
    $("#f-cache").value = a.response_cache || "off";
    $("#f-memory").checked = !!a.memory;
    $("#f-memory-tool").checked = !!a.memory_tool;
    for (const id of ["#duplicate", "#export-one", "#delete", "#chat-with"]) $(id).hidden = isNew;
    resetDelete();
    $("#form-msg").textContent = "";
    state.dirty = false;
    for (const li of document.querySelectorAll(".side-item")) li.classList.toggle("current", li.dataset.id === a.id);
    if (a.id && location.hash !== "#" + a.id) history.replaceState(null, "", "#" + a.id);
  }

  function renderList() {
    const list = $("#agents");
    list.textContent = "";
    for (const a of state.agents) {
      const li = el("li", { class: "side-item" + (state.current && state.current.id === a.id ? " current" : ""), "data-id": a.id });
      const link = el("a", { class: "side-link", href: "#" + a.id },
        el("span", { class: "t", text: a.name }),
        el("span", { class: "s", text: (a.model === "(default)" ? "default model" : a.model) + " · " + (a.tools.length ? a.tools.join(", ") : "no tools") }));
      link.addEventListener("click", (e) => { e.preventDefault(); select(a.id); });
      li.append(link);
      list.append(li);
    }
  }

  function select(id) {
    const a = state.agents.find((x) => x.id === id);
    if (a) fillForm(a);
  }

  async function reload(selectId) {
    state.agents = (await api("GET", "/api/v1/agents")).agents;
    renderList();
    const want = selectId || (state.current && state.current.id) || location.hash.slice(1);
    const found = state.agents.find((a) => a.id === want) || state.agents[0];
    if (found) fillForm(found); else fillForm({ tools: [] });
  }

  async function save(e) {
    e.preventDefault();
    clearErrors();
    const body = agentFromForm();
    const a = state.current;
    try {
      const saved = a && a.id ? await api("PUT", "/api/v1/agents/" + encodeURIComponent(a.id), body)
        : await api("POST", "/api/v1/agents", body);
      await reload(saved.id);
      $("#form-msg").textContent = "Saved.";
    } catch (err) {
      if (err.data && err.data.field) showFieldError(err.data.field, err.message);
      else showBanner(err.message);
    }
  }

  function resetDelete() {
    const b = $("#delete");
    b.classList.remove("confirm");
    b.textContent = "Delete";
  }

  async function remove() {
    const b = $("#delete");
    const a = state.current;
    if (!a || !a.id) return;
    if (!b.classList.contains("confirm")) {
      b.classList.add("confirm");
      b.textContent = "Delete " + a.name + "?";
      setTimeout(resetDelete, 5000);
      return;
    }
    try { await api("DELETE", "/api/v1/agents/" + encodeURIComponent(a.id)); } catch (err) { showBanner(err.message); return; }
    state.current = null;
    history.replaceState(null, "", location.pathname);
    await reload();
    $("#form-msg").textContent = "Deleted " + a.name + ". Its chats stay.";
  }

  function download(name, data) {
    const blob = new Blob([JSON.stringify(data, null, 2) + "\n"], { type: "application/json" });
    const a = el("a", { href: URL.createObjectURL(blob), download: name });
    document.body.append(a);
    a.click();
    setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
  }

  async function importFile(file) {
    let data;
    try { data = JSON.parse(await file.text()); } catch (e) { showBanner(file.name + " is not JSON: " + e.message); return; }
    try {
      const res = await api("POST", "/api/v1/agents/import", data);
      await reload(res.imported[0] && res.imported[0].id);
      $("#form-msg").textContent = "Imported " + res.imported.map((a) => a.name).join(", ") + ".";
    } catch (err) {
      if (err.status === 400 && /exists already/.test(err.message) && confirm(err.message + "\n\nReplace the agents with the same names?")) {
        const res = await api("POST", "/api/v1/agents/import?replace=true", data);
        await reload(res.imported[0] && res.imported[0].id);
        $("#form-msg").textContent = "Imported " + res.imported.map((a) => a.name).join(", ") + ".";
      } else {
        showBanner(err.message);
      }
    }
  }

  $("#agent-form").addEventListener("submit", save);
  $("#agent-form").addEventListener("input", () => { state.dirty = true; $("#form-msg").textContent = ""; });
  $("#new-agent").addEventListener("click", () => {
    history.replaceState(null, "", location.pathname);
    fillForm({ name: "", tools: ["current_time", "calculator"], max_turns: 30, response_cache: "off" });
    for (const li of document.querySelectorAll(".side-item")) li.classList.remove("current");
    $("#f-name").focus();
  });
  $("#delete").addEventListener("click", remove);
  $("#duplicate").addEventListener("click", async () => {
    try {
      const copy = await api("POST", "/api/v1/agents/" + encodeURIComponent(state.current.id) + "/duplicate");
      await reload(copy.id);
      $("#form-msg").textContent = "Duplicated as " + copy.name + ".";
    } catch (err) { showBanner(err.message); }
  });
  $("#export-one").addEventListener("click", async () => {
    const data = await api("GET", "/api/v1/agents/" + encodeURIComponent(state.current.id) + "/export");
    download("agent-" + state.current.name.replace(/[^\w.-]+/g, "_") + ".json", data);
  });
  $("#export-all").addEventListener("click", async () => download("synapse-agents.json", await api("GET", "/api/v1/agents/export")));
  $("#import-file").addEventListener("change", (e) => { if (e.target.files[0]) importFile(e.target.files[0]); e.target.value = ""; });
  $("#chat-with").addEventListener("click", () => { location.href = "/chat?agent=" + encodeURIComponent(state.current.id); });

  async function init() {
    try {
      state.tools = (await api("GET", "/api/v1/tools")).tools;
      try { state.models = await window.SynapseModels.load(); } catch (e) { state.models = { groups: [] }; }
      await reload();
    } catch (err) { showBanner(err.message); }
  }
  init();
})();
