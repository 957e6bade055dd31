// The Chat page: sessions on the left, the conversation, streaming over SSE from POST
// /api/v1/chat/stream (the same turn events the CLI and the API consume). Everything a
// model, a tool or an upstream says is untrusted: text goes in with textContent,
// Markdown through SynapseMarkdown (sanitised, as DOM nodes).
"use strict";
(function () {
  const { $, el, api, showBanner, ago } = window.Synapse;
  const md = window.SynapseMarkdown;
  let csrf = document.querySelector('meta[name="csrf-token"]').content;

  const state = {
    agents: [], models: null, defaultModel: "", sessionId: null, sessionModel: "",
    streaming: null, attachments: [], search: "",
  };

  // --- helpers ------------------------------------------------------------------------

  const fmt = (n) => (n || 0).toLocaleString("en-US");
  function money(v) {
    if (v === null || v === undefined) return "price unknown";
    if (v === 0) return "$0";
    return v < 0.01 ? "$" + v.toFixed(4) : "$" + v.toFixed(3);
  }
  function scrollDown(force) {
    const c = $("#conversation");
    if (force || c.scrollHeight - c.scrollTop - c.clientHeight < 160) c.scrollTop = c.scrollHeight;
  }
  function agentById(id) { return state.agents.find((a) => a.id === id) || null; }
  function currentAgent() { return agentById($("#agent-picker").value) || state.agents[0] || null; }

  // --- setup: is any provider connected? -------------------------------------------------

  async function checkSetup() {
    const box = $("#setup");
    let providers;
    try { providers = (await api("GET", "/api/providers")).providers; } catch (e) { return; }
    const connected = providers.filter((p) => p.configured);
    box.textContent = "";
    if (!connected.length) {
      box.append("No model provider is connected yet. Open ",
        el("a", { href: "/settings/models", text: "Settings → Models" }),
        " and fill in one card: paste an API key on the Anthropic, OpenAI or Google Gemini card, or point the Ollama card at your local server. Then come back here.");
      box.hidden = false;
      return;
    }
    const agent = currentAgent();
    if (!state.defaultModel && agent && (!agent.model || agent.model === "(default)") && !$("#model-picker").value) {
      box.append("Connected, but no default model is chosen. Pick one in ",
        el("a", { href: "/settings/models", text: "Settings → Models" }), ", or choose a model above.");
      box.hidden = false;
      return;
    }
    box.hidden = true;
  }

  // --- agents and models -------------------------------------------------------------------

  function renderAgentPicker(selected) {
    const sel = $("#agent-picker");
    sel.textContent = "";
    for (const a of state.agents) sel.append(el("option", { value: a.id, text: a.name }));
    if (selected && agentById(selected)) sel.value = selected;
    else {
      const def = state.agents.find((a) => a.name === "Assistant") || state.agents[0];
      if (def) sel.value = def.id;
    }
    updateWelcome();
  }

  function renderModelPicker(value) {
    const agent = currentAgent();
    const own = agent && agent.model && agent.model !== "(default)" ? agent.model : (state.defaultModel || "default model");
    if (state.models) window.SynapseModels.fill($("#model-picker"), state.models, "Agent's model (" + own + ")", value || "");
  }

  function updateWelcome() {
    const a = currentAgent();
    $("#welcome-agent").textContent = a ? (a.name + (a.description ? ": " + a.description : "")) : "";
  }

  // --- sessions list ------------------------------------------------------------------------

  async function loadSessions() {
    const q = state.search ? "?q=" + encodeURIComponent(state.search) : "";
    let sessions = [];
    try { sessions = (await api("GET", "/api/v1/sessions" + q)).sessions; } catch (e) { showBanner(e.message); return; }
    const list = $("#sessions");
    list.textContent = "";
    $("#sessions-empty").hidden = sessions.length > 0;
    $("#sessions-empty").textContent = state.search ? "No chat matches." : "No chats yet.";
    for (const s of sessions) list.append(sessionItem(s));
  }

  function sessionItem(s) {
    const li = el("li", { class: "side-item" + (s.id === state.sessionId ? " current" : ""), "data-id": s.id });
    const link = el("a", { class: "side-link", href: "#" + s.id },
      el("span", { class: "t", text: s.title || "New chat" }),
      el("span", { class: "s", text: s.agent + " · " + ago(s.updated_at) + (s.cost_usd ? " · " + money(s.cost_usd) : "") }));
    link.addEventListener("click", (e) => { e.preventDefault(); if (!state.streaming) openSession(s.id); });
    const rename = el("button", { type: "button", class: "icon-btn", title: "Rename", "aria-label": "Rename " + (s.title || "chat"), text: "✎" });
    rename.addEventListener("click", () => startRename(li, s));
    const del = el("button", { type: "button", class: "icon-btn danger", title: "Delete", "aria-label": "Delete " + (s.title || "chat"), text: "×" });
    del.addEventListener("click", async () => {
      if (!del.classList.contains("confirm")) {
        del.classList.add("confirm"); del.textContent = "Delete?";
        setTimeout(() => { del.classList.remove("confirm"); del.textContent = "×"; }, 4000);
        return;
      }
      try { await api("DELETE", "/api/v1/sessions/" + encodeURIComponent(s.id)); } catch (e) { showBanner(e.message); return; }
      if (s.id === state.sessionId) newChat();
      loadSessions();
    });
    li.append(link, el("span", { class: "side-actions" }, rename, del));
    return li;
  }

  function startRename(li, s) {
    const input = el("input", { class: "rename-input", type: "text", value: s.title || "", "aria-label": "New title" });
    li.replaceChildren(input);
    input.focus(); input.select();
    let done = false;
    async function finish(save) {
      if (done) return; done = true;
      if (save && input.value.trim() && input.value.trim() !== s.title) {
        try { await api("PATCH", "/api/v1/sessions/" + encodeURIComponent(s.id), { title: input.value }); } catch (e) { showBanner(e.message); }
        if (s.id === state.sessionId) $("#chat-title").textContent = input.value.trim();
      }
      loadSessions();
    }
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter") { e.preventDefault(); finish(true); }
      if (e.key === "Escape") finish(false);
    });
    input.addEventListener("blur", () => finish(true));
  }

  // --- rendering a conversation ---------------------------------------------------------------

  function clearConversation() {
    const c = $("#conversation");
    c.textContent = "";
    const w = el("div", { class: "welcome", id: "welcome" }, el("h2", { text: "What can I help with?" }), el("p", { class: "muted", id: "welcome-agent" }));
    c.append(w);
    updateWelcome();
  }

  function userBubble(text, images, note) {
    $("#welcome") && $("#welcome").remove();
    const box = el("div", { class: "msg msg-user" });
    if (note) box.append(el("div", { class: "note", text: note }));
    if (images && images.length) {
      const thumbs = el("div", { class: "thumbs" });
      for (const src of images) thumbs.append(el("img", { src: src, alt: "attached image" }));
      box.append(thumbs);
    }
    if (text) box.append(el("div", { class: "bubble", text: text }));
    $("#conversation").append(box);
    return box;
  }

  // One assistant turn: segments (thinking, text, tools) in the order they happen, then a meta line.
  class Turn {
    constructor(agentName, agentId) {
      this.agentId = agentId || null;
      this.memRecalled = null; this.memOutcome = null; this.memNode = null; this.memPending = false;
      $("#welcome") && $("#welcome").remove();
      this.root = el("div", { class: "msg msg-assistant" });
      this.root.append(el("div", { class: "who", text: agentName || "Assistant" }));
      this.reply = el("div", { class: "reply" });
      this.root.append(this.reply);
      $("#conversation").append(this.root);
      this.round = 0; this.text = null; this.textValue = ""; this.thinking = null;
      this.tools = {}; this.toolIndex = {}; this.usage = null; this.cost = 0; this.unpriced = false;
      this.models = new Set(); this.pending = false;
    }
    setRound(r) {
      if (r !== this.round) { this.round = r; this.text = null; this.textValue = ""; this.thinking = null; this.toolIndex = {}; }
    }
    addThinking(r, piece) {
      this.setRound(r);
      if (!this.thinking) {
        this.thinking = { node: el("div", { class: "body" }), text: "" };
        const d = el("details", { class: "thinking" }, el("summary", { text: "Thinking" }), this.thinking.node);
        this.reply.append(d);
      }
      this.thinking.text += piece;
      this.thinking.node.textContent = this.thinking.text;
    }
    addText(r, piece) {
      this.setRound(r);
      if (!this.text) { this.text = el("div", { class: "md" }); this.reply.append(this.text); }
      this.textValue += piece;
      this.schedule();
    }
    schedule() {
      if (this.pending) return;
      this.pending = true;
      requestAnimationFrame(() => {
        this.pending = false;
        if (this.text) { md.into(this.text, this.textValue); this.text.classList.toggle("cursor", !!state.streaming); }
        scrollDown();
      });
    }
    finishText() { if (this.text) { md.into(this.text, this.textValue); this.text.classList.remove("cursor"); } }
    tool(id, name) {
      let t = this.tools[id];
      if (!t) {
        const args = el("span", { class: "args" });
        const stateTag = el("span", { class: "state running", text: "running" });
        const argsPre = el("pre");
        const resultPre = el("pre", { text: "…" });
        const d = el("details", { class: "tool" },
          el("summary", {}, el("span", { text: "⚙ " + (name || "tool") }), args, stateTag),
          el("div", { class: "body" }, el("h4", { text: "Arguments" }), argsPre, el("h4", { text: "Result" }), resultPre));
        this.finishText();
        this.text = null; this.textValue = "";
        this.reply.append(d);
        t = this.tools[id] = { d, args, stateTag, argsPre, resultPre, raw: "" };
      }
      return t;
    }
    toolDelta(e) {
      this.setRound(e.round);
      let key = this.toolIndex[e.index];
      if (!key) key = this.toolIndex[e.index] = e.id || ("idx-" + e.round + "-" + e.index);
      const t = this.tool(key, e.name);
      t.raw += e.arguments || "";
      t.args.textContent = t.raw;
      t.argsPre.textContent = t.raw;
    }
    toolCall(e) {
      let key = null;
      for (const [idx, k] of Object.entries(this.toolIndex)) if (k === e.id) key = k;
      const t = this.tools[e.id] || this.tools[key] || this.tool(e.id, e.name);
      this.tools[e.id] = t;
      const json = JSON.stringify(e.arguments);
      t.args.textContent = json;
      t.argsPre.textContent = JSON.stringify(e.arguments, null, 2);
    }
    toolResult(id, content, isError) {
      const t = this.tools[id] || this.tool(id, "tool");
      t.resultPre.textContent = content;
      t.stateTag.className = "state " + (isError ? "error" : "ok");
      t.stateTag.textContent = isError ? "error" : "done";
    }
    addUsage(model, usage, cost) {
      if (model) this.models.add(model);
      if (!this.usage) this.usage = { prompt: 0, output: 0, cacheRead: 0 };
      this.usage.prompt += usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens;
      this.usage.output += usage.output_tokens;
      this.usage.cacheRead += usage.cache_read_tokens;
      if (cost === null || cost === undefined) this.unpriced = true; else this.cost += cost;
    }
    meta(extra) {
      const line = el("div", { class: "meta-line" });
      if (this.models.size) line.append(el("span", { text: [...this.models].join(", ") }));
      if (this.usage) {
        line.append(el("span", { text: fmt(this.usage.prompt) + " in" }), el("span", { text: fmt(this.usage.output) + " out" }),
          el("span", { text: fmt(this.usage.cacheRead) + " cache read" }),
          el("span", { class: "cost", text: this.unpriced && !this.cost ? "price unknown" : money(this.cost) }));
      }
      if (extra && extra.stopped) line.append(el("span", { class: "stopped", text: "stopped" }));
      if (extra && extra.note) line.append(el("span", { class: "stopped", text: extra.note }));
      this.root.append(line);
      if (this.memNode) this.root.append(this.memNode);  // under the reply's line
    }
    error(message) {
      this.root.append(el("div", { class: "error-box", text: message }));
    }
    // Long-term memory: what was recalled for this reply, and what the turn changed (it
    // arrives after `done`: until then the line says the turn is still being read).
    memory(recalled, outcome, pending) {
      if (recalled !== undefined) this.memRecalled = recalled;
      if (outcome !== undefined) this.memOutcome = outcome;
      this.memPending = !!pending && !this.memOutcome;
      const note = memoryNote(this.memRecalled, this.memOutcome, this.memPending, this.agentId);
      if (this.memNode) this.memNode.replaceWith(note); else this.root.append(note);
      this.memNode = note;
    }
  }

  const OPS = { add: "added", update: "changed", delete: "forgot", create: "created", str_replace: "edited",
                insert: "edited", rename: "renamed" };

  function memoryNote(recalled, outcome, pending, agentId) {
    const d = el("details", { class: "memory-note" });
    const head = [];
    const mem = recalled || {};
    const hits = mem.recalled || [];
    if (hits.length) head.push(hits.length + " recalled");
    if (mem.error) head.push(mem.error);
    const changes = outcome ? outcome.changes || [] : [];
    for (const [op, word] of Object.entries(OPS)) {
      const n = changes.filter((c) => c.op === op).length;
      if (n) head.push(n + " " + word);
    }
    if (pending) head.push("reading the exchange for what to remember…");
    else if (outcome && !changes.length) head.push(outcome.status === "error" ? "not updated: " + outcome.reason : "nothing new to remember");
    if (outcome && outcome.status === "error") d.classList.add("error");
    d.append(el("summary", { text: "Memory: " + (head.join(" · ") || "nothing recalled") }));
    if (hits.length) {
      d.append(el("div", { text: "Recalled for this reply:" }));
      const ul = el("ul");
      for (const h of hits) ul.append(el("li", {}, el("span", { class: "op", text: "#" + h.id + (h.shared ? " (shared)" : "") + " " }), h.text));
      d.append(ul);
    }
    if (changes.length) {
      d.append(el("div", { text: "Written or changed by this turn:" }));
      const ul = el("ul");
      for (const c of changes) {
        const li = el("li", {}, el("span", { class: "op", text: (OPS[c.op] || c.op) + (c.id !== undefined && c.id !== null ? " #" + c.id : "") + " " }));
        if (c.path) li.append(el("code", { text: c.path }), " ");
        if (c.old_text && c.text) li.append(el("span", { class: "old", text: c.old_text }), " → ", c.text);
        else li.append(c.text || c.old_text || "");
        li.append(el("span", { text: " (" + ({ extract: "after the turn", remember: "remember tool", forget: "forget tool", memory_tool: "memory tool" }[c.by] || c.by) + ")" }));
        ul.append(li);
      }
      d.append(ul);
    }
    if (outcome && outcome.rejected && outcome.rejected.length) {
      d.append(el("div", { text: outcome.rejected.length + " proposed change(s) refused: " + outcome.rejected.map((r) => r.reason).join("; ") }));
    }
    if (outcome && outcome.status === "error") d.append(el("div", { text: outcome.reason }));
    d.append(el("a", { href: "/memory#" + encodeURIComponent(agentId || "*"), text: "See all memories" }));
    return d;
  }

  function eventNote(text) {
    $("#conversation").append(el("div", { class: "event-note" }, el("span", { text: text })));
  }

  function renderStored(session) {
    clearConversation();
    const results = {};
    for (const m of session.messages) for (const r of m.tool_results) results[r.tool_call_id] = r;
    let turn = null;
    let memory = null;  // stored with the user message, shown under the reply to it
    for (const m of session.messages) {
      if (m.kind === "summary") { eventNote("Earlier messages were summarised to fit the model's context window (the originals are kept)."); continue; }
      if (m.role === "user") {
        if (m.text || m.images) {
          if (turn) { turn.meta(turn.flags); turn = null; }
          userBubble(m.text, [], m.images ? m.images + " image" + (m.images > 1 ? "s" : "") + " attached" : "");
          memory = m.meta && m.meta.memory ? m.meta.memory : null;
        }
        continue;
      }
      if (!turn) {
        turn = new Turn(session.agent, session.agent_id); turn.flags = {};
        if (memory) turn.memory({ recalled: memory.recalled || [], error: memory.error }, memory.outcome || null, false);
        memory = null;
      }
      const round = (m.meta.round || 0) + 1000 * m.seq;
      if (m.reasoning) turn.addThinking(round, m.reasoning);
      if (m.text) { turn.addText(round, m.text); turn.finishText(); }
      for (const c of m.tool_calls) {
        turn.toolCall({ id: c.id, name: c.name, arguments: c.arguments });
        const r = results[c.id];
        if (r) turn.toolResult(c.id, r.content, r.is_error);
      }
      if (m.meta.usage) turn.addUsage(m.meta.model, m.meta.usage, m.meta.cost_usd);
      if (m.meta.stopped) turn.flags.stopped = true;
      if (m.meta.error) turn.flags.note = "error: " + m.meta.error;
    }
    if (turn) turn.meta(turn.flags);
    scrollDown(true);
  }

  function showTotals(s) {
    if (!s || !s.calls) { $("#chat-totals").textContent = ""; return; }
    const prompt = (s.input_tokens || 0) + (s.cache_read_tokens || 0) + (s.cache_write_tokens || 0);
    $("#chat-totals").textContent = fmt(prompt) + " in · " + fmt(s.output_tokens) + " out · " + money(s.cost_usd);
  }

  async function openSession(id) {
    let s;
    try { s = await api("GET", "/api/v1/sessions/" + encodeURIComponent(id)); } catch (e) {
      if (e.status === 404) { newChat(); return; }
      showBanner(e.message); return;
    }
    showBanner("");
    state.sessionId = s.id;
    state.sessionModel = s.model || "";
    if (location.hash !== "#" + s.id) history.replaceState(null, "", "#" + s.id);
    $("#chat-title").textContent = s.title || "New chat";
    if (s.agent_id && agentById(s.agent_id)) $("#agent-picker").value = s.agent_id;
    renderModelPicker(state.sessionModel);
    showTotals(s);
    renderStored(s);
    for (const li of document.querySelectorAll(".side-item")) li.classList.toggle("current", li.dataset.id === s.id);
    $("#prompt").focus();
  }

  function newChat() {
    if (state.streaming) return;
    state.sessionId = null; state.sessionModel = "";
    history.replaceState(null, "", location.pathname);
    $("#chat-title").textContent = "New chat";
    $("#chat-totals").textContent = "";
    renderModelPicker("");
    clearConversation();
    showBanner("");
    for (const li of document.querySelectorAll(".side-item")) li.classList.remove("current");
    $("#prompt").focus();
  }

  // --- sending and streaming ----------------------------------------------------------------

  function setStreaming(on) {
    $("#send").hidden = on; $("#stop").hidden = !on;
    $("#agent-picker").disabled = on; $("#model-picker").disabled = on;
  }

  async function post(url, body, signal) {
    const opts = { method: "POST", signal, credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "text/event-stream", "X-CSRF-Token": csrf },
      body: JSON.stringify(body) };
    let res = await fetch(url, opts);
    if (res.status === 403) {
      const data = await res.clone().json().catch(() => ({}));
      if (data.kind === "csrf") {
        csrf = (await api("GET", "/api/session")).csrf_token;
        opts.headers["X-CSRF-Token"] = csrf;
        res = await fetch(url, opts);
      }
    }
    return res;
  }

  async function send() {
    const text = $("#prompt").value;
    if (state.streaming || (!text.trim() && !state.attachments.length)) return;
    const agent = currentAgent();
    const images = state.attachments.slice();
    const body = { message: text, agent: agent ? agent.id : undefined };
    if (state.sessionId) body.session_id = state.sessionId;
    const model = $("#model-picker").value;
    if (model) body.model = model;
    if (images.length) body.images = images.map((i) => ({ media_type: i.type, data: i.data }));
    $("#prompt").value = ""; autosize();
    state.attachments = []; renderAttachments();
    showBanner("");
    userBubble(text, images.map((i) => i.url));
    const turn = new Turn(agent ? agent.name : "Assistant", agent ? agent.id : null);
    const controller = new AbortController();
    const mine = { controller, turn };
    state.streaming = mine;
    setStreaming(true);
    scrollDown(true);
    let ended = false;
    try {
      const res = await post("/api/v1/chat/stream", body, controller.signal);
      if (!res.ok) {
        const data = await res.json().catch(() => ({}));
        turn.error(data.detail || data.error || ("HTTP " + res.status));
        ended = true;
        return;
      }
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, cut); buf = buf.slice(cut + 2);
          const line = block.split("\n").find((l) => l.startsWith("data: "));
          if (line && onEvent(turn, JSON.parse(line.slice(6)), model) && !ended) {
            // The reply is complete: the composer is free again, while events that follow
            // `done` (what memory made of the turn) are still read into this turn.
            ended = true;
            release(mine);
          }
        }
      }
    } catch (e) {
      if (e.name === "AbortError") {
        turn.finishText();
        turn.meta({ stopped: true });
        ended = true;
      } else {
        turn.error(e.message || String(e));
        ended = true;
      }
    } finally {
      turn.finishText();
      if (!ended) turn.meta({ note: "the connection ended early" });
      if (turn.memPending) turn.memory(undefined, undefined, false);
      release(mine);
      if (state.sessionId) refreshSessionBits();
    }
  }

  // The turn `mine` no longer holds the composer (its reply ended, or its stream did).
  function release(mine) {
    if (state.streaming !== mine) return;
    state.streaming = null;
    setStreaming(false);
    $("#prompt").focus();
  }

  async function refreshSessionBits() {
    await loadSessions();
    try { showTotals(await api("GET", "/api/v1/sessions/" + encodeURIComponent(state.sessionId))); } catch (e) { /* list shows it */ }
  }

  // Handle one turn event; true when the turn has ended.
  function onEvent(turn, e, model) {
    switch (e.type) {
      case "start":
        if (state.sessionId !== e.session_id) {
          state.sessionId = e.session_id;
          history.replaceState(null, "", "#" + e.session_id);
          $("#chat-title").textContent = e.title || "New chat";
          if (model) api("PATCH", "/api/v1/sessions/" + encodeURIComponent(e.session_id), { model }).catch(() => {});
        }
        return false;
      case "compacted":
        eventNote("The conversation was too long for the model: " +
          (e.shortened_tool_results ? e.shortened_tool_results + " old tool result(s) shortened" : "") +
          (e.shortened_tool_results && e.summarised_messages ? ", " : "") +
          (e.summarised_messages ? e.summarised_messages + " older message(s) summarised" : "") +
          " (" + fmt(e.tokens_before) + " → " + fmt(e.tokens_after) + " tokens; the originals are kept).");
        $("#conversation").append(turn.root);
        return false;
      case "reasoning": turn.addThinking(e.round, e.text); return false;
      case "text": turn.addText(e.round, e.text); return false;
      case "tool_call_delta": turn.toolDelta(e); return false;
      case "tool_call": turn.toolCall(e); return false;
      case "tool_result": turn.toolResult(e.id, e.content, e.is_error); return false;
      case "usage": turn.addUsage(e.model, e.usage, e.cost_usd); return false;
      case "done":
        turn.finishText();
        turn.meta(e.stop_reason === "max_turns" ? { note: e.message } : {});
        if (turn.memRecalled) turn.memory(undefined, undefined, true);
        return true;
      case "memory_recalled":
        turn.memory({ recalled: e.memories, error: e.error }, undefined, false);
        return false;
      case "memory":
        turn.memory(undefined, e, false);
        if (state.sessionId) refreshSessionBits();
        return false;
      case "error":
        turn.finishText();
        turn.error(e.message);
        if (e.usage) turn.meta({});
        return true;
      default:
        return false;  // events this page does not know yet
    }
  }

  // --- attachments ----------------------------------------------------------------------------

  function renderAttachments() {
    const box = $("#attachments");
    box.textContent = "";
    box.hidden = !state.attachments.length;
    state.attachments.forEach((a, i) => {
      const rm = el("button", { type: "button", "aria-label": "Remove image", text: "✕" });
      rm.addEventListener("click", () => { state.attachments.splice(i, 1); renderAttachments(); });
      box.append(el("div", { class: "attachment" }, el("img", { src: a.url, alt: a.name }), rm));
    });
  }

  function addFiles(files) {
    for (const f of files) {
      if (!/^image\/(png|jpeg|gif|webp)$/.test(f.type)) { showBanner(f.name + ": only PNG, JPEG, GIF and WebP images can be attached"); continue; }
      if (f.size > 10 * 1024 * 1024) { showBanner(f.name + " is larger than 10 MB"); continue; }
      const reader = new FileReader();
      reader.onload = () => {
        const url = String(reader.result);
        state.attachments.push({ name: f.name, type: f.type, url, data: url.slice(url.indexOf(",") + 1) });
        renderAttachments();
      };
      reader.readAsDataURL(f);
    }
  }

  // --- wiring -----------------------------------------------------------------------------------

  function autosize() {
    const t = $("#prompt");
    t.style.height = "auto";
    t.style.height = Math.min(t.scrollHeight, 220) + "px";
  }

  $("#composer").addEventListener("submit", (e) => { e.preventDefault(); send(); });
  $("#prompt").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); send(); }
  });
  $("#prompt").addEventListener("input", autosize);
  $("#stop").addEventListener("click", () => { if (state.streaming) state.streaming.controller.abort(); });
  $("#new-chat").addEventListener("click", newChat);
  $("#attach").addEventListener("change", (e) => { addFiles(e.target.files); e.target.value = ""; });
  let searchTimer = null;
  $("#session-search").addEventListener("input", (e) => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => { state.search = e.target.value.trim(); loadSessions(); }, 200);
  });
  $("#agent-picker").addEventListener("change", () => { updateWelcome(); renderModelPicker($("#model-picker").value); checkSetup(); });
  $("#model-picker").addEventListener("change", async () => {
    const value = $("#model-picker").value;
    if (state.sessionId) {
      try { await api("PATCH", "/api/v1/sessions/" + encodeURIComponent(state.sessionId), { model: value }); } catch (e) { showBanner(e.message); }
    }
    checkSetup();
  });
  window.addEventListener("hashchange", () => {
    const id = location.hash.slice(1);
    if (id && id !== state.sessionId && !state.streaming) openSession(id);
  });

  async function init() {
    try {
      const [agents, settings] = await Promise.all([api("GET", "/api/v1/agents"), api("GET", "/api/settings/model")]);
      state.agents = agents.agents;
      state.defaultModel = settings.model || "";
    } catch (e) { showBanner(e.message); return; }
    renderAgentPicker(new URLSearchParams(location.search).get("agent"));
    try { state.models = await window.SynapseModels.load(); } catch (e) { state.models = { groups: [] }; }
    renderModelPicker("");
    await loadSessions();
    const id = location.hash.slice(1);
    if (id) await openSession(id);
    checkSetup();
    $("#prompt").focus();
  }
  init();
})();
