/* The page of /debug/pprof/ui/<profile>: fetches /debug/pprof/<profile>
 * with the page's own query (a CPU profile waits its seconds), then draws
 * the totals, the flame graph (an icicle: click zooms, the breadcrumb goes
 * back, hover tells, search highlights and sums) and the top table
 * (sortable; a row focuses the graph), with the sample-type switch, the
 * label filter and a diff's growth and shrinkage in two colours. Names from
 * the profile only ever reach the DOM as text (textContent), never markup. */
'use strict';

(() => {
  const ROW = 18;        /* px per flame graph row */
  const MIN_PX = 1.5;    /* narrower frames: one collapsed block per parent */
  const LABEL_PX = 28;   /* narrower frames carry no text */
  const TOP_ROWS = 100;  /* table rows before "show all" */
  const MAX_LABEL_VALUES = 1000;

  const $ = (id) => document.getElementById(id);
  const make = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };

  const st = {
    m: null, name: '', diff: false, type: 0, filter: {}, focus: -1, zoom: 0,
    kept: null, tree: null, top: null, hits: null, sortKey: 'flat', asc: false, all: false,
  };

  /* ---- numbers ----------------------------------------------------- */

  function fmt(v, signed) {
    const unit = st.m.types[st.type].unit;
    const sign = v < 0 ? '-' : signed && v > 0 ? '+' : '';
    let a = Math.abs(v);
    const scaled = (units, step) => {
      let i = 0;
      while (a >= step && i < units.length - 1) {
        a /= step;
        i++;
      }
      return sign + (i === 0 ? String(Math.round(a)) : a.toFixed(a < 10 ? 2 : a < 100 ? 1 : 0)) + ' ' + units[i];
    };
    if (unit === 'bytes') return scaled(['B', 'KiB', 'MiB', 'GiB', 'TiB'], 1024);
    if (unit === 'nanoseconds') return scaled(['ns', 'µs', 'ms', 's'], 1000);
    return sign + Math.round(a).toLocaleString('en-US') + (unit && unit !== 'count' ? ' ' + unit : '');
  }

  /* Shares are of the total, or for a diff of all change (growth plus
   * shrinkage), so that both directions read on one scale. */
  function base() {
    return st.diff ? st.top.grown + st.top.shrunk : st.top.total;
  }
  function pct(v) {
    const b = base();
    return b ? (100 * v / b).toFixed(2) + '%' : '-';
  }

  function color(n) {
    const t = st.tree;
    if (st.diff) {
      const r = t.abs[n] ? t.val[n] / t.abs[n] : 0;
      const l = 94 - 34 * Math.abs(r);
      return Math.abs(r) < 0.02 ? 'hsl(0, 0%, 86%)' : r > 0 ? `hsl(4, 80%, ${l}%)` : `hsl(212, 75%, ${l}%)`;
    }
    const name = st.m.fnName[t.fn[n]];
    let h = 0;
    for (let i = 0; i < name.length && i < 48; i++) h = (h * 31 + name.charCodeAt(i)) | 0;
    return `hsl(${((h >>> 0) % 50) + 5}, ${72 + ((h >>> 8) % 20)}%, ${64 + ((h >>> 16) % 12)}%)`;
  }

  /* ---- status ------------------------------------------------------ */

  function status(text, cls) {
    const s = $('status');
    s.textContent = text;
    s.className = cls || '';
    s.hidden = !text;
  }

  function done(state) {
    performance.mark('uv-pprof-rendered');
    document.documentElement.dataset.state = state;
  }

  function fail(title, detail) {
    status(title, 'error');
    if (detail) {
      $('error').textContent = detail;
      $('error').hidden = false;
    }
    done('error');
  }

  /* ---- controls ---------------------------------------------------- */

  function controls() {
    const m = st.m;
    const type = $('type');
    m.types.forEach((t, i) => type.appendChild(make('option', '', t.type + (t.unit ? ' (' + t.unit + ')' : ''))).value = String(i));
    type.value = String(st.type);
    type.disabled = m.types.length < 2;
    type.addEventListener('change', () => {
      st.type = Number(type.value);
      update();
    });
    const labels = $('labels');
    for (const [key, values] of [...m.labelKeys].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
      if (values.size > MAX_LABEL_VALUES) continue;
      const sel = make('select');
      sel.title = 'label ' + key;
      sel.dataset.key = key;
      sel.appendChild(make('option', '', key + ': all')).value = '';
      for (const [v, count] of [...values].sort((a, b) => b[1] - a[1])) {
        sel.appendChild(make('option', '', key + '=' + v + ' (' + count + ')')).value = v;
      }
      sel.addEventListener('change', () => {
        if (sel.value === '') delete st.filter[key];
        else st.filter[key] = sel.value;
        update();
      });
      labels.appendChild(sel);
    }
    const search = $('search');
    search.disabled = false;
    let timer = 0;
    search.addEventListener('input', () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        applySearch(search.value);
        drawFlame();
        drawTop();
      }, 120);
    });
    document.querySelectorAll('#top th').forEach((th) => th.addEventListener('click', () => {
      const key = th.dataset.key;
      st.asc = st.sortKey === key ? !st.asc : key === 'name';
      st.sortKey = key;
      drawTop();
    }));
    $('more').addEventListener('click', () => {
      st.all = true;
      drawTop();
    });
    const flame = $('flame');
    flame.addEventListener('click', (e) => {
      const bar = e.target.closest('.f');
      if (bar && bar.node !== undefined) zoom(bar.node);
    });
    flame.addEventListener('mousemove', (e) => tip(e));
    flame.addEventListener('mouseleave', () => ($('tip').hidden = true));
    document.addEventListener('keydown', (e) => {
      if (e.key === 'Escape' && st.zoom > 0) zoom(st.tree.parent[st.zoom]);
    });
    let resize = 0;
    window.addEventListener('resize', () => {
      clearTimeout(resize);
      resize = setTimeout(drawFlame, 100);
    });
  }

  function applySearch(q) {
    st.hits = null;
    $('matches').textContent = '';
    if (!q) return;
    let re;
    try {
      re = new RegExp(q, 'i');
    } catch (e) {
      re = new RegExp(q.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), 'i');
    }
    const r = Profile.search(st.m, st.type, st.kept, re);
    st.hits = r.hit;
    $('matches').textContent = r.fns === 0
      ? 'no function matches'
      : `${r.fns} function${r.fns > 1 ? 's' : ''} match: ${fmt(r.value, st.diff)} (${pct(r.value)})`;
  }

  function zoom(n) {
    st.zoom = n;
    drawCrumbs();
    drawFlame();
  }

  function focus(f) {
    st.focus = st.focus === f ? -1 : f;
    st.zoom = 0;
    st.tree = Profile.tree(st.m, st.type, st.kept, st.focus);
    drawCrumbs();
    drawFlame();
    drawTop();
  }

  /* ---- views ------------------------------------------------------- */

  function update() {
    const m = st.m;
    st.kept = Profile.keep(m, st.filter);
    st.top = Profile.top(m, st.type, st.kept);
    if (st.focus >= 0 && st.top.cum[st.focus] === 0) st.focus = -1;
    st.tree = Profile.tree(m, st.type, st.kept, st.focus);
    st.zoom = 0;
    applySearch($('search').value);
    drawSummary();
    const empty = st.tree.abs[0] === 0;
    if (empty) {
      status(m.n === 0
        ? 'This profile has no samples: nothing was recorded' +
          (st.diff ? ' and nothing changed in the window.' : '.') +
          (m.comments.length ? ' The profile says why:' : '')
        : 'No samples with a non-zero ' + m.types[st.type].type +
          (Object.keys(st.filter).length ? ' match the label filter.' : '.'), 'empty');
    } else {
      status('');
    }
    $('top').hidden = empty;
    drawCrumbs();
    drawFlame();
    drawTop();
    return empty;
  }

  function drawSummary() {
    const m = st.m, s = $('summary'), t = st.top;
    s.textContent = '';
    const type = m.types[st.type];
    if (st.diff) {
      s.append('Diff of ' + type.type + ': ');
      s.appendChild(make('span', 'grown', fmt(t.grown, true) + ' grown'));
      s.append(', ');
      s.appendChild(make('span', 'shrunk', fmt(-t.shrunk, true) + ' shrunk'));
      s.append(', net ' + fmt(t.total, true));
    } else {
      s.append('Total ' + type.type + ': ' + fmt(t.total));
    }
    /* the proto's samples: one per distinct stack and labels */
    s.append(' in ' + m.n.toLocaleString('en-US') + ' stack' + (m.n === 1 ? '' : 's'));
    if (m.durationNanos > 0) s.append(', over ' + (m.durationNanos / 1e9).toFixed(1) + ' s');
    if (m.timeNanos > 0) s.append(', taken ' + new Date(m.timeNanos / 1e6).toLocaleString());
    const c = $('comments');
    c.textContent = '';
    for (const text of m.comments) c.appendChild(make('li', '', text));
  }

  function drawCrumbs() {
    const nav = $('crumbs'), t = st.tree, m = st.m;
    nav.textContent = '';
    const chain = [];
    for (let n = st.zoom; n > 0; n = t.parent[n]) chain.unshift(n);
    const crumb = (label, n) => {
      const b = make('button', '', label);
      b.addEventListener('click', () => zoom(n));
      nav.appendChild(b);
    };
    crumb('all', 0);
    for (const n of chain) {
      nav.appendChild(make('span', 'sep', ' › '));
      crumb(m.fnName[t.fn[n]], n);
    }
    if (st.focus >= 0) {
      const f = make('span', 'focus', 'focus: ' + m.fnName[st.focus] + ' ');
      const x = make('button', '', '✕');
      x.title = 'remove the focus';
      x.addEventListener('click', () => focus(st.focus));
      f.appendChild(x);
      nav.appendChild(f);
    }
  }

  function drawFlame() {
    const box = $('flame'), t = st.tree, m = st.m;
    box.textContent = '';
    if (!t || t.abs[0] === 0) {
      box.style.height = '0';
      return;
    }
    const W = box.clientWidth || 1000;
    const frag = document.createDocumentFragment();
    const bar = (n, x, w, d, cls) => {
      const e = make('div', 'f' + (cls ? ' ' + cls : ''));
      e.node = n;
      e.style.left = x + 'px';
      e.style.top = d * ROW + 'px';
      e.style.width = Math.max(w - (w > 3 ? 1 : 0), 1) + 'px';
      if (!cls) {
        e.style.backgroundColor = color(n);
        if (st.hits && st.hits[t.fn[n]]) e.classList.add('hit');
      }
      if (w >= LABEL_PX) e.textContent = n === 0 ? 'all' : m.fnName[t.fn[n]];
      frag.appendChild(e);
      return e;
    };
    bar(0, 0, W, 0, 'root');
    const chain = [];
    for (let n = st.zoom; n > 0; n = t.parent[n]) chain.unshift(n);
    chain.forEach((n, i) => bar(n, 0, W, i + 1, n === st.zoom ? '' : 'anc'));
    const scale = W / t.abs[st.zoom];
    let depth = chain.length;
    const todo = [st.zoom, 0, chain.length + 1];
    while (todo.length) {
      const d = todo.pop(), x0 = todo.pop(), n = todo.pop();
      let x = x0;
      for (let i = t.first[n]; i < t.first[n + 1]; i++) {
        const c = t.kids[i];
        const w = t.abs[c] * scale;
        if (w < MIN_PX) {
          let rest = 0;
          for (let j = i; j < t.first[n + 1]; j++) rest += t.abs[t.kids[j]];
          if (rest * scale >= 0.5) {
            const e = bar(n, x, rest * scale, d, 'small');
            e.node = undefined;
            e.small = [t.first[n + 1] - i, rest];
            if (rest * scale >= LABEL_PX) e.textContent = '+' + (t.first[n + 1] - i);
          }
          break;
        }
        bar(c, x, w, d);
        if (d > depth) depth = d;
        todo.push(c, x, d + 1);
        x += w;
      }
    }
    box.style.height = (depth + 1) * ROW + 'px';
    box.appendChild(frag);
  }

  function tip(e) {
    const tipBox = $('tip');
    const bar = e.target.closest && e.target.closest('.f');
    if (!bar) {
      tipBox.hidden = true;
      return;
    }
    const t = st.tree, m = st.m;
    tipBox.textContent = '';
    if (bar.small) {
      tipBox.appendChild(make('b', '', bar.small[0] + ' frames too narrow to draw'));
      tipBox.appendChild(make('div', '', fmt(bar.small[1]) + ' (' + pct(bar.small[1]) + ') altogether; zoom in to see them'));
    } else {
      const n = bar.node;
      const f = t.fn[n];
      tipBox.appendChild(make('b', '', n === 0 ? 'all' : m.fnName[f]));
      if (n > 0 && m.fnFile[f]) {
        const lines = t.lmin[n] ? ':' + t.lmin[n] + (t.lmax[n] !== t.lmin[n] ? '-' + t.lmax[n] : '') : '';
        tipBox.appendChild(make('div', 'file', m.fnFile[f] + lines));
      }
      let self = t.val[n];
      for (let i = t.first[n]; i < t.first[n + 1]; i++) self -= t.val[t.kids[i]];
      let text = fmt(t.val[n], st.diff) + ' (' + pct(t.val[n]) + ')';
      if (st.diff) text += ', change ' + fmt(t.abs[n]) + ' (' + pct(t.abs[n]) + ')';
      tipBox.appendChild(make('div', '', text));
      if (st.zoom > 0 && n !== 0) {
        tipBox.appendChild(make('div', '', (100 * t.abs[n] / t.abs[st.zoom]).toFixed(2) + '% of ' + m.fnName[t.fn[st.zoom]]));
      }
      tipBox.appendChild(make('div', '', 'self ' + fmt(self, st.diff)));
    }
    tipBox.hidden = false;
    const x = Math.min(e.clientX + 14, window.innerWidth - tipBox.offsetWidth - 4);
    const y = e.clientY + 18 + tipBox.offsetHeight > window.innerHeight ? e.clientY - tipBox.offsetHeight - 8 : e.clientY + 18;
    tipBox.style.left = Math.max(x, 0) + 'px';
    tipBox.style.top = Math.max(y, 0) + 'px';
  }

  function drawTop() {
    const m = st.m, t = st.top, body = $('top').tBodies[0];
    const key = st.sortKey;
    const rows = t.rows.slice();
    const val = key === 'flat' ? t.flat : t.cum;
    if (key === 'name') {
      rows.sort((a, b) => (m.fnName[a] < m.fnName[b] ? -1 : m.fnName[a] > m.fnName[b] ? 1 : 0) * (st.asc ? 1 : -1));
    } else if (st.diff) {
      rows.sort((a, b) => (Math.abs(val[a]) - Math.abs(val[b])) * (st.asc ? 1 : -1) || t.cum[b] - t.cum[a]);
    } else {
      rows.sort((a, b) => (val[a] - val[b]) * (st.asc ? 1 : -1) || t.cum[b] - t.cum[a]);
    }
    document.querySelectorAll('#top th').forEach((th, i) => {
      th.className = th.dataset.key === key && (key === 'name' || i % 2 === 1) ? 'sorted' + (st.asc ? ' asc' : '') : '';
    });
    const shown = st.all ? rows.length : Math.min(rows.length, TOP_ROWS);
    const frag = document.createDocumentFragment();
    const cell = (tr, text, v) => {
      const td = make('td', st.diff && v ? (v > 0 ? 'grown' : 'shrunk') : '', text);
      tr.appendChild(td);
    };
    for (let i = 0; i < shown; i++) {
      const f = rows[i];
      const tr = make('tr', (f === st.focus ? 'focused' : '') + (st.hits && st.hits[f] ? ' hit' : ''));
      const name = make('td', '', m.fnName[f]);
      name.title = m.fnFile[f] ? m.fnName[f] + '\n' + m.fnFile[f] : m.fnName[f];
      tr.appendChild(name);
      cell(tr, fmt(t.flat[f], st.diff), t.flat[f]);
      cell(tr, pct(t.flat[f]), t.flat[f]);
      cell(tr, fmt(t.cum[f], st.diff), t.cum[f]);
      cell(tr, pct(t.cum[f]), t.cum[f]);
      tr.addEventListener('click', () => focus(f));
      frag.appendChild(tr);
    }
    body.textContent = '';
    body.appendChild(frag);
    const more = $('more');
    more.hidden = shown >= rows.length;
    more.textContent = 'Show all ' + rows.length.toLocaleString('en-US') + ' functions';
  }

  /* ---- loading ----------------------------------------------------- */

  async function main() {
    const parts = location.pathname.split('/');
    st.name = decodeURIComponent(parts[parts.length - 1]);
    const params = new URLSearchParams(location.search);
    params.delete('debug'); /* the page always reads the proto */
    const query = params.toString();
    const url = '../' + encodeURIComponent(st.name) + (query ? '?' + query : '');
    document.title = st.name + ' · uv_pprof';
    $('name').textContent = st.name;
    $('raw').href = url;
    st.diff = params.has('base') || (params.has('seconds') && st.name !== 'profile');

    let countdown = 0;
    if (params.has('seconds') || st.name === 'profile') {
      const secs = Number.parseInt(params.get('seconds') || '30', 10);
      if (secs > 0) {
        const end = Date.now() + secs * 1000;
        const what = st.name === 'profile' ? 'Collecting a CPU profile' : 'Waiting for the second snapshot of the diff';
        const tick = () => status(`${what}: ${Math.max(0, Math.ceil((end - Date.now()) / 1000))} s left of ${secs} s…`);
        tick();
        countdown = setInterval(tick, 1000);
      }
    }
    let res;
    try {
      res = await fetch(url, {cache: 'no-store'});
    } catch (e) {
      clearInterval(countdown);
      fail('Could not reach the process: ' + e.message);
      return;
    }
    if (!res.ok) {
      const text = await res.text();
      clearInterval(countdown);
      fail('The server answered ' + res.status + ' ' + res.statusText + ' for ' + st.name + ':', text);
      return;
    }
    const bytes = new Uint8Array(await res.arrayBuffer());
    clearInterval(countdown);
    performance.mark('uv-pprof-fetched');
    status('Reading the profile…');
    try {
      st.m = await Profile.load(bytes);
    } catch (e) {
      fail('Could not read the profile: ' + e.message);
      return;
    }
    st.diff = st.diff || st.m.negative;
    st.type = st.m.defaultType;
    if (st.m.types.length === 0) {
      fail('The profile has no sample types.');
      return;
    }
    controls();
    done(update() ? 'empty' : 'ready');
  }

  main();
})();
