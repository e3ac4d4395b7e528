"""The inline CSS and JavaScript of the HTML report (kept apart so html.py reads as layout).

The script is plain ES5 with no libraries: it sorts the file table when a column header is
clicked, and shows or hides a file's full sync map when its thumbnail is clicked. Without
JavaScript every full map is shown (see the <noscript> style in the page head).
"""

from __future__ import annotations

CSS = """
:root { color-scheme: light; --fg: #1a1a1a; --muted: #555; --line: #c8c8c8; --head: #f2f2f2; }
* { box-sizing: border-box; }
body { margin: 0; padding: 24px 32px 48px; color: var(--fg); background: #fff;
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 32px 0 8px; }
h3 { font-size: 15px; margin: 16px 0 4px; }
.meta, .note, .dir, .hint { color: var(--muted); }
.meta { margin: 0 0 16px; }
.cards { display: flex; gap: 12px; flex-wrap: wrap; margin: 8px 0; }
.card { min-width: 150px; padding: 10px 16px; border: 1px solid var(--line); border-radius: 8px;
  border-left-width: 6px; }
.card .n { display: block; font-size: 28px; font-weight: 700; line-height: 1.1; }
.card.checked { border-left-color: #555; }
.card.in-sync { border-left-color: #1b7f3b; }
.card.out-of-sync { border-left-color: #b35900; }
.card.failed { border-left-color: #b3261e; }
table { border-collapse: collapse; }
#files { width: 100%; }
#files caption { text-align: left; padding: 4px 0 8px; }
#files th, #files td { border-bottom: 1px solid var(--line); padding: 6px 8px; text-align: left;
  vertical-align: middle; }
#files thead th { background: var(--head); position: sticky; top: 0; z-index: 1; font-size: 14px;
  line-height: 1.2; vertical-align: bottom; }
#files thead tr { background: var(--head); }
#files td.num, #files th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
#files tbody:hover > tr.row { background: #fafafa; }
th.name { font-weight: normal; min-width: 12em; overflow-wrap: anywhere; }
.words { display: block; white-space: nowrap; }
.error { display: block; color: #8c1d16; overflow-wrap: anywhere; }
tr.detail { scroll-margin-top: 48px; }
#files th.fit, #files td.fit { width: 1%; }
.fname { font-weight: 600; display: block; }
.dir { font-size: 12px; display: block; }
.sort { font: inherit; font-weight: 700; color: inherit; background: none; border: 0; padding: 0;
  cursor: pointer; white-space: normal; text-align: inherit; }
.sort::after { content: "\\00a0\\2195"; color: #666; }
th[aria-sort="ascending"] .sort::after { content: "\\00a0\\25B2"; color: var(--fg); }
th[aria-sort="descending"] .sort::after { content: "\\00a0\\25BC"; color: var(--fg); }
button:focus-visible { outline: 3px solid #1f5fbf; outline-offset: 2px; }
.thumb { display: block; padding: 0; border: 1px solid #888; background: #fff; cursor: zoom-in;
  line-height: 0; }
.thumb[aria-expanded="true"] { cursor: zoom-out; border-color: #1f5fbf; }
.nomap { color: var(--muted); font-size: 13px; display: inline-block; width: 240px; text-align: center; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600;
  margin: 0 6px 2px 0; white-space: nowrap; }
.badge.in-sync { background: #e3f3e8; color: #0f5c2a; }
.badge.out-of-sync { background: #fff0dc; color: #7a3d00; }
.badge.failed { background: #fde7e5; color: #8c1d16; }
.badge.warn { background: #eeeeee; color: #333; }
tr.detail > td { background: #f7f7f7; padding: 12px; }
tr.detail svg { max-width: 100%; height: auto; display: block; }
.facts { display: grid; grid-template-columns: max-content auto; gap: 2px 16px; margin: 10px 0 0;
  font-size: 13px; }
.facts dt { color: var(--muted); }
.facts dd { margin: 0; overflow-wrap: anywhere; }
.kv th, .kv td { border-bottom: 1px solid var(--line); padding: 4px 12px 4px 0; text-align: left;
  vertical-align: top; }
.kv td { overflow-wrap: anywhere; }
code { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 13px; }
.toolbar { margin: 4px 0 8px; }
.toolbar button { font: inherit; font-size: 14px; padding: 3px 10px; cursor: pointer; }
footer { margin-top: 40px; color: var(--muted); font-size: 13px; }
"""

# Sort keys live in data-* attributes of each file's <tbody> (a file is one <tbody>: its row and
# its hidden detail row move together). Missing values sort last in both directions.
JS = """
(function () {
  'use strict';
  var table = document.getElementById('files');
  if (!table) { return; }
  var heads = Array.prototype.slice.call(table.querySelectorAll('th[data-sort]'));
  function value(body, key, type) {
    var raw = body.getAttribute('data-' + key);
    if (raw === null || raw === '') { return null; }
    if (type === 'text') { return raw; }
    var v = parseFloat(raw);
    return isNaN(v) ? null : v;
  }
  function sortBy(th) {
    var key = th.getAttribute('data-sort');
    var type = th.getAttribute('data-type');
    var dir = th.getAttribute('aria-sort') === 'ascending' ? 'descending' : 'ascending';
    var sign = dir === 'ascending' ? 1 : -1;
    heads.forEach(function (h) { h.removeAttribute('aria-sort'); });
    th.setAttribute('aria-sort', dir);
    var bodies = Array.prototype.slice.call(table.tBodies);
    bodies.sort(function (a, b) {
      var va = value(a, key, type), vb = value(b, key, type);
      if (va === null || vb === null) {
        if (va !== null || vb !== null) { return va === null ? 1 : -1; }
        return a.getAttribute('data-index') - b.getAttribute('data-index');
      }
      var c = type === 'text' ? va.localeCompare(vb, undefined, {numeric: true, sensitivity: 'base'})
        : va - vb;
      return c !== 0 ? sign * c : a.getAttribute('data-index') - b.getAttribute('data-index');
    });
    bodies.forEach(function (b) { table.appendChild(b); });
  }
  heads.forEach(function (th) {
    th.querySelector('button.sort').addEventListener('click', function () { sortBy(th); });
  });
  function setOpen(button, open) {
    var detail = document.getElementById(button.getAttribute('aria-controls'));
    if (!detail) { return; }
    detail.hidden = !open;
    button.setAttribute('aria-expanded', open ? 'true' : 'false');
  }
  table.addEventListener('click', function (ev) {
    var button = ev.target.closest ? ev.target.closest('button.thumb') : null;
    if (button) { setOpen(button, button.getAttribute('aria-expanded') !== 'true'); }
  });
  function setAll(open) {
    Array.prototype.forEach.call(table.querySelectorAll('button.thumb'), function (b) { setOpen(b, open); });
  }
  var show = document.getElementById('show-all'), hide = document.getElementById('hide-all');
  if (show) { show.addEventListener('click', function () { setAll(true); }); }
  if (hide) { hide.addEventListener('click', function () { setAll(false); }); }
  // A link to report.html#detail-3 opens that file's full map.
  var target = location.hash ? document.getElementById(location.hash.slice(1)) : null;
  if (target && target.classList.contains('detail')) {
    var opener = table.querySelector('button.thumb[aria-controls="' + target.id + '"]');
    if (opener) { setOpen(opener, true); target.scrollIntoView(); }
  }
  document.documentElement.setAttribute('data-report-script', 'ready');
}());
"""
