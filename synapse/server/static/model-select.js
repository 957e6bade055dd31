// The grouped model selector (the same as Settings → Models), for the Chat and Agents pages.
"use strict";
window.SynapseModels = (function () {
  const { el, api } = window.Synapse;

  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  // /api/models, waiting briefly while the providers' first checks are still running
  // (`pending`); a check slower than that calls `onLater` with the full lists when it ends.
  async function load(onLater) {
    let res = await api("GET", "/api/models");
    for (let i = 0; i < 12 && res.pending; i++) {
      await sleep(400);
      res = await api("GET", "/api/models");
    }
    if (res.pending && onLater) later(onLater);
    return res;
  }

  async function later(onLater) {
    for (let i = 0; i < 60; i++) {
      await sleep(1000);
      let res;
      try { res = await api("GET", "/api/models"); } catch (e) { return; }
      if (!res.pending) { onLater(res); return; }
    }
  }

  // Fill <select>: `first` is the inheriting option ("(default)"), then one optgroup per provider.
  function fill(select, res, first, value) {
    select.textContent = "";
    select.append(el("option", { value: "", text: first }));
    let found = !value;
    for (const g of res.groups || []) {
      const models = g.models.filter((m) => !m.embedding);
      if (!models.length) continue;
      const og = el("optgroup", { label: g.label });
      for (const m of models) {
        og.append(el("option", { value: m.id, text: m.label ? m.id + " — " + m.label : m.id }));
        if (m.id === value) found = true;
      }
      select.append(og);
    }
    if (!found) select.append(el("option", { value: value, text: value + " (not listed)" }));
    select.value = value || "";
  }

  return { load, fill };
})();
