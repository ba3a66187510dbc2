// hear-sela browse: the emergent-class browser's script (written for it; no libraries). The index reads
// window.SITE (data/site.js) and, per head, data/head<h>.js, which calls SITE_HEAD(h, data); cluster pages only
// need the keyboard. When a page has set itself up, <html data-ready="1"> (tests read it with --dump-dom).
"use strict";
(function () {
  const doc = document.documentElement;
  function typing(e) { const t = e.target.tagName; return t === "INPUT" || t === "TEXTAREA" || t === "SELECT"; }
  function fmt(v, d) { return v === null || v === undefined || Number.isNaN(v) ? "n/a" : v.toFixed(d); }
  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // ---------------------------------------------------------------- cluster page
  function clusterPage() {
    const clips = Array.from(document.querySelectorAll("ol.clips li"));
    clips.forEach(li => {
      const a = li.querySelector("audio");
      a.addEventListener("play", () => {
        document.querySelectorAll("audio").forEach(o => { if (o !== a) o.pause(); });
        li.classList.add("playing");
      });
      a.addEventListener("pause", () => li.classList.remove("playing"));
    });
    document.addEventListener("keydown", e => {
      if (typing(e) || e.ctrlKey || e.metaKey || e.altKey) return;
      const link = rel => document.querySelector(`a[rel="${rel}"]`);
      if (e.key === "ArrowLeft" && link("prev")) location.href = link("prev").href;
      else if (e.key === "ArrowRight" && link("next")) location.href = link("next").href;
      else if (e.key === "u") location.href = document.querySelector("nav.top a").href;
      else if (/^[1-9]$/.test(e.key) && clips[+e.key - 1]) {
        const a = clips[+e.key - 1].querySelector("audio");
        if (a.paused) { a.play().catch(() => {}); } else { a.pause(); }
        a.focus();
      }
    });
    doc.dataset.ready = "1";
  }

  // ---------------------------------------------------------------- index
  const COLS = [  // key, header, numeric, title
    ["cluster", "cluster", true, "cluster id; opens its page"],
    ["size", "clips", true, "clips the head put in this cluster"],
    ["labelled", "labelled", true, "clips with a reference label"],
    ["top", "top label", false, "the reference label carried by most labelled clips"],
    ["purity", "share", true, "share of the labelled clips carrying the top label"],
    ["entropy", "entropy (bits)", true, "entropy of the cluster's label distribution"],
    ["confidence", "confidence", true, "the head's mean confidence in its clips"],
  ];
  const state = { head: 0, sort: "size", desc: true, page: 0, label: "", min: 0, hover: -1 };
  const heads = {};
  let rows = [];

  window.SITE_HEAD = function (h, data) {
    data.rows = data.clusters.map(r => ({ cluster: r[0], size: r[1], labelled: r[2], purity: r[3], entropy: r[4],
      confidence: r[5], top: r[6], labels: r[7] }));
    const order = data.rows.slice().sort((a, b) => b.size - a.size || a.cluster - b.cluster);
    data.colour = {};
    order.forEach((r, i) => { if (i < SITE.palette.length) data.colour[r.cluster] = SITE.palette[i]; });
    data.byId = {};
    data.rows.forEach(r => { data.byId[r.cluster] = r; });
    heads[h] = data;
    if (h === state.head) showHead();
  };

  function selectHead(h) {
    if (h < 0 || h >= SITE.heads) return;
    state.head = h; state.page = 0; state.hover = -1;
    if (location.hash !== `#h=${h}`) history.replaceState(null, "", `#h=${h}`);
    if (heads[h]) { showHead(); return; }
    const s = el("script", { src: `data/head${h}.js` });
    s.onerror = () => { throw new Error(`data/head${h}.js is missing`); };
    document.body.appendChild(s);
  }

  function headsTable() {
    const t = document.getElementById("heads");
    t.replaceChildren();
    const cols = SITE.score_columns;
    const tr = el("tr");
    ["head", "non-empty clusters", ...cols.map(c => c[1])].forEach((h, i) => {
      tr.appendChild(el("th", { scope: "col", class: i ? "n" : "", title: i > 1 ? cols[i - 2][2] : "" }, h));
    });
    t.appendChild(el("thead")).appendChild(tr);
    const body = t.appendChild(el("tbody"));
    SITE.head_scores.forEach(s => {
      const r = body.appendChild(el("tr", s.head === state.head ? { class: "sel" } : {}));
      const b = el("button", { type: "button", "aria-pressed": String(s.head === state.head) },
                   `head ${s.head}` + (s.head === SITE.report_head ? " (best)" : ""));
      b.addEventListener("click", () => selectHead(s.head));
      r.appendChild(el("td")).appendChild(b);
      r.appendChild(el("td", { class: "n" }, String(s.nonempty)));
      cols.forEach(c => r.appendChild(el("td", { class: "n" }, fmt(s[c[0]], 3))));
    });
  }

  function filtered() {
    const q = state.label.toLowerCase();
    let r = heads[state.head].rows.filter(x => x.size >= state.min &&
      (!q || x.labels.some(l => l.toLowerCase().includes(q))));
    const k = state.sort, sign = state.desc ? -1 : 1;
    r.sort((a, b) => {
      const va = a[k], vb = b[k];
      const c = typeof va === "string" ? va.localeCompare(vb) : (Number.isNaN(va) ? -1 : va) - (Number.isNaN(vb) ? -1 : vb);
      return sign * c || a.cluster - b.cluster;
    });
    return r;
  }

  function clusterTable() {
    rows = filtered();
    const pages = Math.max(1, Math.ceil(rows.length / SITE.page_size));
    state.page = Math.min(state.page, pages - 1);
    const t = document.getElementById("clusters");
    t.replaceChildren();
    const tr = el("tr");
    COLS.forEach(([key, label, num, title]) => {
      const th = el("th", { scope: "col", class: num && key !== "cluster" ? "n" : "", title: title,
        "aria-sort": state.sort === key ? (state.desc ? "descending" : "ascending") : "none" });
      const b = el("button", { type: "button" }, label + (state.sort === key ? (state.desc ? " ▼" : " ▲") : ""));
      b.addEventListener("click", () => {
        if (state.sort === key) state.desc = !state.desc; else { state.sort = key; state.desc = num; }
        clusterTable();
      });
      tr.appendChild(th).appendChild(b);
    });
    t.appendChild(el("thead")).appendChild(tr);
    const body = t.appendChild(el("tbody"));
    const data = heads[state.head];
    rows.slice(state.page * SITE.page_size, (state.page + 1) * SITE.page_size).forEach(r => {
      const row = body.appendChild(el("tr"));
      const td = row.appendChild(el("td"));  // left-aligned: the swatch stays in line over 1- to 4-digit ids
      const sw = td.appendChild(el("i", { class: "sw", "aria-hidden": "true" }));
      sw.style.cssText = `display:inline-block;width:9px;height:9px;margin-right:4px;background:${data.colour[r.cluster] || SITE.grey}`;
      td.appendChild(el("a", { href: `h${state.head}/c${r.cluster}.html` }, String(r.cluster)));
      row.appendChild(el("td", { class: "n" }, String(r.size)));
      row.appendChild(el("td", { class: "n" }, String(r.labelled)));
      row.appendChild(el("td", {}, r.top || "—"));
      row.appendChild(el("td", { class: "n" }, fmt(r.purity, 2)));
      row.appendChild(el("td", { class: "n" }, fmt(r.entropy, 2)));
      row.appendChild(el("td", { class: "n" }, fmt(r.confidence, 2)));
      const on = () => { state.hover = r.cluster; drawMap(); };
      const off = () => { state.hover = -1; drawMap(); };
      row.addEventListener("mouseenter", on); row.addEventListener("mouseleave", off);
      row.addEventListener("focusin", on); row.addEventListener("focusout", off);
    });
    document.getElementById("f-count").textContent =
      `${rows.length} of ${data.rows.length} non-empty clusters shown`;
    document.getElementById("page").textContent = `page ${state.page + 1} of ${pages}`;
    document.getElementById("prev").disabled = state.page === 0;
    document.getElementById("next").disabled = state.page >= pages - 1;
  }

  // map: SITE.xy is [x0, y0, x1, y1, ...] in [0, 1]; heads[h].clip the cluster of every clip
  const map = { canvas: null, ctx: null, px: null };
  function drawMap() {
    if (!SITE.xy || !heads[state.head]) return;
    const c = map.canvas, ctx = map.ctx, data = heads[state.head], n = SITE.xy.length / 2, pad = 10;
    const w = c.width - 2 * pad, h = c.height - 2 * pad;
    if (!map.px) {
      map.px = new Float32Array(2 * n);
      for (let i = 0; i < n; i++) { map.px[2 * i] = pad + SITE.xy[2 * i] * w; map.px[2 * i + 1] = pad + (1 - SITE.xy[2 * i + 1]) * h; }
    }
    ctx.clearRect(0, 0, c.width, c.height);
    const r = n > 5000 ? 1.5 : n > 500 ? 2.5 : 3.5;
    for (const pass of [0, 1]) {  // grey ones underneath
      for (let i = 0; i < n; i++) {
        const col = data.colour[data.clip[i]];
        if ((pass === 0) === Boolean(col)) continue;
        ctx.fillStyle = state.hover >= 0 ? "#e2e2e2" : (col || SITE.grey);
        ctx.fillRect(map.px[2 * i] - r, map.px[2 * i + 1] - r, 2 * r, 2 * r);
      }
    }
    if (state.hover >= 0) {
      ctx.fillStyle = data.colour[state.hover] || "#222";
      ctx.strokeStyle = "#000";
      for (let i = 0; i < n; i++) {
        if (data.clip[i] !== state.hover) continue;
        ctx.fillRect(map.px[2 * i] - r - 1, map.px[2 * i + 1] - r - 1, 2 * r + 2, 2 * r + 2);
        ctx.strokeRect(map.px[2 * i] - r - 1, map.px[2 * i + 1] - r - 1, 2 * r + 2, 2 * r + 2);
      }
    }
  }

  function nearest(e) {
    const rect = map.canvas.getBoundingClientRect();
    const x = (e.clientX - rect.left) * map.canvas.width / rect.width;
    const y = (e.clientY - rect.top) * map.canvas.height / rect.height;
    let best = -1, bd = 64;  // within 8 canvas pixels
    for (let i = 0; i < map.px.length / 2; i++) {
      const d = (map.px[2 * i] - x) ** 2 + (map.px[2 * i + 1] - y) ** 2;
      if (d < bd) { bd = d; best = i; }
    }
    return best < 0 ? null : { clip: best, x: e.clientX - rect.left, y: e.clientY - rect.top };
  }

  function setupMap() {
    map.canvas = document.getElementById("map");
    const sec = map.canvas.closest("section");
    if (!SITE.xy) { sec.hidden = true; return; }
    map.ctx = map.canvas.getContext("2d");
    document.getElementById("map-caption").textContent = SITE.map_caption;
    const tip = document.getElementById("tip");
    map.canvas.addEventListener("mousemove", e => {
      const hit = nearest(e), data = heads[state.head];
      if (!hit || !data) { tip.hidden = true; if (state.hover >= 0) { state.hover = -1; drawMap(); } return; }
      const k = data.clip[hit.clip], r = data.byId[k];
      tip.hidden = false;
      tip.textContent = `${SITE.clip_ids[hit.clip]} · cluster ${k} (${r.size} clips)` + (r.top ? ` · ${r.top} ${fmt(r.purity, 2)}` : "");
      tip.style.left = `${hit.x + 12}px`; tip.style.top = `${hit.y + 8}px`;
      if (state.hover !== k) { state.hover = k; drawMap(); }
    });
    map.canvas.addEventListener("mouseleave", () => { tip.hidden = true; state.hover = -1; drawMap(); });
    map.canvas.addEventListener("click", e => {
      const hit = nearest(e);
      if (hit) location.href = `h${state.head}/c${heads[state.head].clip[hit.clip]}.html`;
    });
  }

  function legend() {
    const ul = document.getElementById("legend"), data = heads[state.head];
    ul.replaceChildren();
    const coloured = data.rows.filter(r => data.colour[r.cluster]).sort((a, b) => b.size - a.size);
    coloured.forEach(r => {
      const li = ul.appendChild(el("li"));
      li.appendChild(el("i", { "aria-hidden": "true" })).style.background = data.colour[r.cluster];
      li.appendChild(el("a", { href: `h${state.head}/c${r.cluster}.html` }, `cluster ${r.cluster}`));
      li.appendChild(document.createTextNode(` (${r.size} clips${r.top ? ", " + r.top : ""})`));
    });
    const rest = data.rows.length - coloured.length;
    if (rest > 0) {
      const li = ul.appendChild(el("li"));
      li.appendChild(el("i", { "aria-hidden": "true" })).style.background = SITE.grey;
      li.appendChild(document.createTextNode(`the other ${rest} clusters`));
    }
  }

  function showHead() {
    document.getElementById("head-no").textContent = String(state.head);
    headsTable();
    clusterTable();
    legend();
    drawMap();
    doc.dataset.ready = "1";
  }

  function indexPage() {
    const fl = document.getElementById("f-label"), fs = document.getElementById("f-size");
    fl.addEventListener("input", () => { state.label = fl.value; state.page = 0; clusterTable(); });
    fs.addEventListener("input", () => { state.min = +fs.value || 0; state.page = 0; clusterTable(); });
    document.getElementById("prev").addEventListener("click", () => { state.page--; clusterTable(); });
    document.getElementById("next").addEventListener("click", () => { state.page++; clusterTable(); });
    document.addEventListener("keydown", e => {
      if (typing(e) || e.ctrlKey || e.metaKey || e.altKey) return;
      const pages = Math.ceil(rows.length / SITE.page_size);
      if (e.key === "/") { e.preventDefault(); fl.focus(); }
      else if (e.key === "[" && state.page > 0) { state.page--; clusterTable(); }
      else if (e.key === "]" && state.page < pages - 1) { state.page++; clusterTable(); }
      else if (/^[0-9]$/.test(e.key)) selectHead(+e.key);
    });
    setupMap();
    const m = /h=(\d+)/.exec(location.hash);
    selectHead(m ? +m[1] : SITE.report_head);
  }

  if (document.body.dataset.page === "index") indexPage(); else clusterPage();
})();
