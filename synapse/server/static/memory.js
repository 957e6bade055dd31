// The Memory page: whose memories on the left (shared, then each agent), the memories on the
// right, over /api/v1/agents/{agent}/memories. Memory texts were written by models and people:
// every one goes in with textContent, never as HTML.
"use strict";
(function () {
  const { $, el, api, showBanner, ago } = window.Synapse;
  const PAGE = 50;
  const state = { scopes: [], scope: null, offset: 0, query: "", mode: "hybrid", historyFor: null, polling: null };

  const base = () => "/api/v1/agents/" + encodeURIComponent(state.scope === "*" ? "shared" : state.scope) + "/memories";
  const current = () => state.scopes.find((s) => s.agent === state.scope) || null;

  const count = (n, one, many) => n + " " + (n === 1 ? one : many);
  const memories = (n) => count(n, "memory", "memories");

  // --- scopes -------------------------------------------------------------------------------

  async function loadScopes() {
    state.scopes = (await api("GET", "/api/v1/memories")).scopes;
    const list = $("#scopes");
    const pick = $("#scope-picker");
    list.textContent = ""; pick.textContent = "";
    for (const s of state.scopes) {
      const note = s.agent === "*" ? "every agent reads these" : (s.memory ? "memory on" : "memory off");
      const link = el("a", { class: "side-link", href: "#" + s.agent },
        el("span", { class: "t", text: s.name }),
        el("span", { class: "s", text: memories(s.count) + " · " + note }));
      link.addEventListener("click", (e) => { e.preventDefault(); select(s.agent); });
      list.append(el("li", { class: "side-item" + (s.agent === state.scope ? " current" : ""), "data-id": s.agent }, link));
      pick.append(el("option", { value: s.agent, text: s.name + " (" + s.count + ")" }));
    }
    if (state.scope) pick.value = state.scope;
  }

  function markCurrent() {
    for (const li of document.querySelectorAll("#scopes .side-item")) li.classList.toggle("current", li.dataset.id === state.scope);
    $("#scope-picker").value = state.scope;
  }

  async function select(scope) {
    if (!state.scopes.some((s) => s.agent === scope)) scope = "*";
    state.scope = scope; state.offset = 0; state.query = ""; state.historyFor = null;
    $("#search").value = "";
    if (location.hash !== "#" + scope) history.replaceState(null, "", "#" + scope);
    markCurrent();
    showBanner("");
    const s = current();
    $("#scope-title").textContent = scope === "*" ? "Shared memories" : s.name + "’s memories";
    $("#scope-lede").textContent = scope === "*"
      ? "Recalled by every agent with memory on. Only people change these; agents can add to their own."
      : (s.memory ? "Recalled before each of " + s.name + "’s turns; written by its tools, after each turn, and by you."
                  : s.name + " has memory off: nothing is recalled or written until it is turned on (Agents page).");
    $("#export").href = base() + "/export";
    $("#tab-files").hidden = scope === "*" || !s.memory_tool;
    showTab("memories");
    await Promise.all([loadList(), loadHistory(), loadFiles(), loadReembed()]);
  }

  // --- the memories -------------------------------------------------------------------------

  async function loadList(more) {
    const list = $("#memories");
    if (!more) { state.offset = 0; list.textContent = ""; }
    let items, total;
    try {
      if (state.query) {
        const q = "?q=" + encodeURIComponent(state.query) + "&k=50&all=true&mode=" + state.mode;
        items = (await api("GET", base() + "/search" + q)).results;
        total = items.length;
        $("#list-note").textContent = items.length ? "Best matches first." : "";
      } else {
        const data = await api("GET", base() + "?limit=" + PAGE + "&offset=" + state.offset);
        items = data.memories; total = data.total;
        $("#list-note").textContent = total ? memories(total) + ", most recently changed first." : "";
      }
    } catch (e) { showBanner(e.message); return; }
    for (const m of items) list.append(memoryItem(m));
    state.offset += items.length;
    $("#more").hidden = !!state.query || state.offset >= total;
    const empty = $("#memories-empty");
    empty.hidden = list.children.length > 0;
    empty.textContent = state.query ? "No memory matches." : "No memories yet.";
  }

  function metaLine(m) {
    const bits = ["#" + m.id];
    if (m.score !== undefined) {
      if (m.similarity !== null && m.similarity !== undefined) bits.push("similarity " + m.similarity.toFixed(2));
      if (m.keyword_rank) bits.push("word match #" + m.keyword_rank);
      if (m.agent === "*" && state.scope !== "*") bits.push("shared");
      return bits.join(" · ");
    }
    const how = { manual: "added by hand", remember: "remembered by the agent", extract: "learned after a turn",
                  import: "imported", restore: "restored", memory_tool: "memory tool" }[m.source] || m.source;
    bits.push(how + (m.session_id ? " in chat " + m.session_id + (m.turn ? " (turn " + m.turn + ")" : "") : ""));
    bits.push("changed " + ago(m.updated_at));
    if (m.recall_count) bits.push("recalled " + count(m.recall_count, "time", "times"));
    return bits.join(" · ");
  }

  function memoryItem(m) {
    const li = el("li", { class: "memory", "data-id": String(m.id) });
    const text = el("div", { class: "memory-text", text: m.text });
    const meta = el("div", { class: "memory-meta", text: metaLine(m) });
    const edit = el("button", { type: "button", class: "btn btn-quiet btn-small", text: "Edit" });
    const hist = el("button", { type: "button", class: "btn btn-quiet btn-small", text: "History" });
    const del = el("button", { type: "button", class: "btn btn-danger btn-small", text: "Delete" });
    edit.addEventListener("click", () => startEdit(li, m, text));
    hist.addEventListener("click", () => { state.historyFor = m.id; loadHistory(); showTab("history"); });
    del.addEventListener("click", async () => {
      if (!del.classList.contains("confirm")) {
        del.classList.add("confirm"); del.textContent = "Delete for good?";
        setTimeout(() => { del.classList.remove("confirm"); del.textContent = "Delete"; }, 4000);
        return;
      }
      try { await api("DELETE", base() + "/" + m.id); } catch (e) { showBanner(e.message); return; }
      li.remove();
      await refreshCounts();
      loadHistory();
    });
    li.append(text, meta, el("div", { class: "memory-buttons" }, edit, hist, del));
    return li;
  }

  function startEdit(li, m, textNode) {
    const box = el("textarea", { class: "memory-edit", "aria-label": "Memory text", maxlength: "2000" });
    box.value = m.text;
    const save = el("button", { type: "button", class: "btn btn-primary btn-small", text: "Save" });
    const cancel = el("button", { type: "button", class: "btn btn-quiet btn-small", text: "Cancel" });
    const buttons = li.querySelector(".memory-buttons");
    const row = el("div", { class: "memory-buttons" }, save, cancel);
    textNode.replaceWith(box);
    buttons.replaceWith(row);
    box.focus();
    const done = (fresh) => {
      const item = memoryItem(fresh);
      li.replaceWith(item);
    };
    cancel.addEventListener("click", () => done(m));
    box.addEventListener("keydown", (e) => {
      if (e.key === "Escape") done(m);
      if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); save.click(); }
    });
    save.addEventListener("click", async () => {
      if (!box.value.trim()) { showBanner("A memory needs some text; use Delete to remove it."); return; }
      save.disabled = true;
      try {
        const fresh = await api("PATCH", base() + "/" + m.id, { text: box.value });
        done(m.score !== undefined ? Object.assign({}, m, { text: fresh.text }) : fresh);
        showBanner("");
        loadHistory();
      } catch (e) { showBanner(e.message); save.disabled = false; }
    });
  }

  async function refreshCounts() {
    try { await loadScopes(); markCurrent(); } catch (e) { /* the list still works */ }
    if (!state.query) {
      const total = (current() || {}).count || 0;
      $("#list-note").textContent = total ? memories(total) + ", most recently changed first." : "";
      $("#memories-empty").hidden = $("#memories").children.length > 0;
    }
  }

  // --- history ------------------------------------------------------------------------------

  async function loadHistory() {
    const list = $("#history");
    list.textContent = "";
    let entries;
    const q = "?limit=200" + (state.historyFor ? "&memory_id=" + state.historyFor : "");
    try { entries = (await api("GET", base() + "/history" + q)).history; } catch (e) { showBanner(e.message); return; }
    if (state.historyFor) {
      const all = el("button", { type: "button", class: "btn btn-quiet btn-small", text: "Show every change" });
      all.addEventListener("click", () => { state.historyFor = null; loadHistory(); });
      list.append(el("li", { class: "history-filter" }, el("span", { text: "Changes of memory #" + state.historyFor }), all));
    }
    const words = { add: "added", update: "changed", delete: "deleted", restore: "restored" };
    const who = { manual: "by hand", api: "by hand", import: "by an import", restore: "by a restore",
                  extract: "by the extraction after a turn", remember: "by the agent (remember)",
                  forget: "by the agent (forget)" };
    for (const h of entries) {
      const li = el("li", { class: "history-entry" });
      li.append(el("div", { class: "history-meta", text: "#" + h.memory_id + " " + (words[h.op] || h.op) + " " + (who[h.actor] || "by " + h.actor) +
        (h.session_id ? " in chat " + h.session_id : "") + " · " + ago(h.created_at) }));
      if (h.old_text !== null) li.append(el("div", { class: "history-old", text: h.old_text }));
      if (h.new_text !== null) li.append(el("div", { class: "history-new", text: h.new_text }));
      if (h.old_text !== null) {
        const restore = el("button", { type: "button", class: "btn btn-quiet btn-small", text: "Restore this text" });
        restore.addEventListener("click", async () => {
          try { await api("POST", base() + "/history/" + h.id + "/restore"); } catch (e) { showBanner(e.message); return; }
          showBanner("");
          await Promise.all([loadList(), loadHistory(), refreshCounts()]);
        });
        li.append(restore);
      }
      list.append(li);
    }
    $("#history-empty").hidden = entries.length > 0;
  }

  // --- Claude's memory files ---------------------------------------------------------------

  async function loadFiles() {
    const list = $("#files");
    list.textContent = "";
    if (state.scope === "*") return;
    let files;
    try { files = (await api("GET", base() + "/files")).files; } catch (e) { showBanner(e.message); return; }
    for (const f of files) {
      const del = el("button", { type: "button", class: "btn btn-danger btn-small", text: "Delete" });
      const li = el("li", { class: "file" },
        el("div", { class: "file-head" }, el("code", { text: f.path }), el("span", { class: "muted small", text: f.size + " bytes" }), del),
        el("pre", { class: "file-text", text: f.text === null ? "(not text)" : f.text }));
      del.addEventListener("click", async () => {
        if (!del.classList.contains("confirm")) { del.classList.add("confirm"); del.textContent = "Delete for good?"; return; }
        try { await api("DELETE", base() + "/files?path=" + encodeURIComponent(f.path)); } catch (e) { showBanner(e.message); return; }
        li.remove();
        $("#files-empty").hidden = list.children.length > 0;
      });
      list.append(li);
    }
    $("#files-empty").hidden = files.length > 0;
    $("#tab-files").textContent = "Files (" + files.length + ")";
    if (files.length) $("#tab-files").hidden = false;  // kept after the memory tool was turned off
  }

  // --- re-embedding ------------------------------------------------------------------------------

  function showReembed(p) {
    const bar = $("#reembed-bar");
    const covered = p.total === 0 || p.done >= p.total;
    bar.hidden = covered && !p.running && !p.error;
    $("#reembed-progress").value = p.fraction;
    let text = p.running ? "Re-embedding with " + p.model + ": " + p.done + " of " + p.total + "…"
      : covered ? "All " + memories(p.total) + " are embedded with " + p.model + "."
      : p.done + " of " + p.total + " embedded with " + p.model + ": recall uses the earlier vectors until the rest are done.";
    if (p.error) text += " Stopped: " + p.error + " (Re-embed continues where it stopped.)";
    $("#reembed-text").textContent = text;
    $("#reembed").disabled = !!p.running;
    $("#reembed").title = covered ? "Every memory has a vector in " + p.model : "Embed the rest with " + p.model;
  }

  async function loadReembed() {
    let p;
    try { p = await api("GET", base() + "/reembed"); } catch (e) { showBanner(e.message); return; }
    showReembed(p);
    clearTimeout(state.polling);
    if (p.running) state.polling = setTimeout(loadReembed, 400);
  }

  $("#reembed").addEventListener("click", async () => {
    try { showReembed(await api("POST", base() + "/reembed")); } catch (e) {
      if (e.status !== 409) { showBanner(e.message); return; }
    }
    $("#reembed-bar").hidden = false;
    loadReembed();
  });

  // --- adding, searching, forgetting everything -------------------------------------------------

  $("#add-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = $("#add-text").value;
    if (!text.trim()) return;
    try { await api("POST", base(), { text }); } catch (err) { showBanner(err.message); return; }
    $("#add-text").value = "";
    showBanner("");
    state.query = ""; $("#search").value = "";
    await Promise.all([loadList(), loadHistory(), refreshCounts()]);
  });

  let timer = null;
  $("#search").addEventListener("input", (e) => {
    clearTimeout(timer);
    timer = setTimeout(() => { state.query = e.target.value.trim(); loadList(); }, 250);
  });
  $("#search-mode").addEventListener("change", (e) => { state.mode = e.target.value; if (state.query) loadList(); });
  $("#more").addEventListener("click", () => loadList(true));

  $("#forget-all").addEventListener("click", () => {
    const s = current();
    const files = s.memory_tool || !$("#tab-files").hidden ? " and the files of its memory tool" : "";
    $("#forget-text").textContent = "This erases " + memories(s.count) + " of " +
      (state.scope === "*" ? "the shared scope" : s.name) + ", their history" + files +
      ", from the database for good. There is no undo.";
    $("#forget-dialog").showModal();
  });
  $("#forget-dialog").addEventListener("close", async () => {
    if ($("#forget-dialog").returnValue !== "forget") return;
    try { await api("DELETE", base() + "?confirm=forget"); } catch (e) { showBanner(e.message); return; }
    await refreshCounts();
    await Promise.all([loadList(), loadHistory(), loadFiles(), loadReembed()]);
  });

  // --- tabs -----------------------------------------------------------------------------------

  function showTab(name) {
    for (const t of ["memories", "history", "files"]) {
      $("#tab-" + t).setAttribute("aria-selected", String(t === name));
      $("#pane-" + t).hidden = t !== name;
    }
  }
  for (const t of ["memories", "history", "files"]) $("#tab-" + t).addEventListener("click", () => showTab(t));

  $("#scope-picker").addEventListener("change", (e) => select(e.target.value));
  window.addEventListener("hashchange", () => {
    const id = decodeURIComponent(location.hash.slice(1));
    if (id && id !== state.scope) select(id);
  });

  async function init() {
    try { await loadScopes(); } catch (e) { showBanner(e.message); return; }
    const want = decodeURIComponent(location.hash.slice(1)) || new URLSearchParams(location.search).get("agent");
    const byName = state.scopes.find((s) => want && s.name.toLowerCase() === want.toLowerCase());
    select(byName ? byName.agent : (want || "*"));
  }
  init();
})();
