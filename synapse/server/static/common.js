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

  return { $, el, api, showBanner, ago };
})();
