// Shared by the Settings pages: DOM helpers and the /api client (CSRF token, login redirect).
"use strict";
window.Synapse = (function () {
  const $ = (sel, root) => (root || document).querySelector(sel);
  let csrf = document.querySelector('meta[name="csrf-token"]').content;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") node.textContent = v;
      else if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) if (c !== null && c !== undefined && c !== false) node.append(c);
    return node;
  }

  // JSON in and out. A stale CSRF token is refreshed once; a lost login goes to /login.
  async function api(method, url, body, retried) {
    const opts = { method, headers: { "Accept": "application/json" }, credentials: "same-origin" };
    if (method !== "GET") {
      opts.headers["X-CSRF-Token"] = csrf;
      if (body !== undefined) {
        opts.headers["Content-Type"] = "application/json";
        opts.body = JSON.stringify(body);
      }
    }
    let res;
    try {
      res = await fetch(url, opts);
    } catch (e) {
      throw new Error("Synapse is not answering: is `synapse serve` still running?");
    }
    let data = {};
    try { data = await res.json(); } catch (e) { data = {}; }
    if (res.status === 401 && data.kind === "login") {
      location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
      throw new Error("log in first");
    }
    if (res.status === 403 && data.kind === "csrf" && !retried) {
      csrf = (await api("GET", "/api/session")).csrf_token;
      return api(method, url, body, true);
    }
    if (!res.ok) {
      const err = new Error(typeof data.detail === "string" && data.detail ? data.detail : ("HTTP " + res.status));
      err.status = res.status; err.data = data;
      throw err;
    }
    return data;
  }

  // "3 min ago", "2 h ago", or the date.
  function ago(ts) {
    const s = Date.now() / 1000 - ts;
    if (s < 60) return "just now";
    if (s < 3600) return Math.floor(s / 60) + " min ago";
    if (s < 86400) return Math.floor(s / 3600) + " h ago";
    return new Date(ts * 1000).toLocaleDateString();
  }

  function showBanner(message) {
    const b = $("#banner");
    b.textContent = message || "";
    b.hidden = !message;
  }

  // The signed-in account and its "Log out" button, on pages that have them.
  const user = document.querySelector('meta[name="user"]').content;
  if (user && $("#account")) {
    $("#account").hidden = false;
    $("#account-name").textContent = user;
    $("#logout").addEventListener("click", async () => {
      try { await api("POST", "/api/logout"); } finally { location.href = "/login"; }
    });
  }

  // The side list of the Chat and Agents pages as a drawer on a narrow screen (workspace.css
  // hides it there): `toggle` opens it over the page, the rest of the page is inert while it
  // is open, Escape / the close button / a tap outside close it and focus returns to `toggle`.
  // Returns close(), for the pages to call once something in the list was chosen.
  function drawer(side, toggle, closer) {
    const narrow = window.matchMedia("(max-width: 860px)");
    const backdrop = el("div", { class: "side-backdrop", hidden: true });
    side.after(backdrop);
    const others = () => [...document.body.children].filter((n) => !n.contains(side) && n !== backdrop)
      .concat([...side.parentElement.children].filter((n) => n !== side && n !== backdrop));
    const isOpen = () => side.classList.contains("open");
    function open() {
      side.classList.add("open");
      backdrop.hidden = false;
      toggle.setAttribute("aria-expanded", "true");
      for (const n of others()) n.inert = true;
      const first = side.querySelector(".side-head button, .side-head input");  // New chat / New agent
      (first || closer).focus();
    }
    function close(keepFocus) {
      if (!isOpen()) return;
      side.classList.remove("open");
      backdrop.hidden = true;
      toggle.setAttribute("aria-expanded", "false");
      for (const n of others()) n.inert = false;
      if (!keepFocus && narrow.matches) toggle.focus();
    }
    toggle.setAttribute("aria-expanded", "false");
    toggle.addEventListener("click", () => (isOpen() ? close() : open()));
    closer.addEventListener("click", () => close());
    backdrop.addEventListener("click", () => close());
    side.addEventListener("keydown", (e) => {
      if (!isOpen() || e.defaultPrevented) return;
      if (e.key === "Escape") { e.preventDefault(); close(); return; }
      if (e.key !== "Tab") return;
      // Tab goes round inside the open drawer (the page behind it is inert)
      const stops = [...side.querySelectorAll("button, input, a[href]")].filter((n) => n.offsetParent !== null && !n.disabled);
      const first = stops[0], last = stops[stops.length - 1];
      if (e.shiftKey && document.activeElement === first) { e.preventDefault(); last.focus(); }
      else if (!e.shiftKey && document.activeElement === last) { e.preventDefault(); first.focus(); }
    });
    narrow.addEventListener("change", () => close(true));  // wider again: the list is part of the page
    return (keepFocus) => close(keepFocus);
  }

  return { $, el, api, showBanner, ago, drawer };
})();
