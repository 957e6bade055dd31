// Markdown for untrusted text (anything a model, a tool or an upstream says): marked turns
// it into HTML, DOMPurify removes everything that could run script or leave the page, and
// raw HTML in the Markdown is shown as text; the result is returned as a DocumentFragment: no string of it is ever assigned as HTML.
// Images are dropped too: a model's image could only load from elsewhere (the CSP blocks
// that) or track the reader.
"use strict";
window.SynapseMarkdown = (function () {
  const purify = window.DOMPurify;
  const config = {
    RETURN_DOM_FRAGMENT: true,
    FORBID_TAGS: ["img", "style", "form", "input", "button", "textarea", "select", "iframe", "object", "embed", "svg", "math"],
    FORBID_ATTR: ["style", "class", "id"],
    ALLOW_DATA_ATTR: false,
  };
  purify.addHook("afterSanitizeAttributes", (node) => {
    if (node.tagName === "A") {
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer nofollow");
    }
  });
  // Raw HTML in a model's Markdown is shown as the text it is, never parsed.
  const escapeHtml = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
  window.marked.use({ gfm: true, breaks: false, renderer: { html: (token) => escapeHtml(token.text || token.raw || "") } });

  function render(text) {
    return purify.sanitize(window.marked.parse(text || ""), config);
  }

  // Replace `node`'s children with the rendered Markdown of `text`.
  function into(node, text) {
    node.replaceChildren(render(text));
  }

  return { render, into };
})();
