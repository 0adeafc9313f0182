/* The profile in the browser: profile.proto (gzipped or not) decoded into
 * flat arrays (each sample's stack as function ids, its values, its labels),
 * and what the views compute from them for one sample type and filter: the
 * call tree, the flat/cum table, the share of stacks matching a search.
 * No DOM here; ui.js draws. Written from the public profile.proto. */
'use strict';

const Profile = (() => {
  /* ---- protobuf wire format ---------------------------------------- */

  /* The reader's state: one buffer and position for the whole decode (no
   * object per message: a 50k-stack heap profile has a million fields). */
  let B = null;
  let P = 0;

  function truncated() {
    throw new Error('truncated profile');
  }

  /* A varint as a Number, exact below 2^53; a negative int64 (ten bytes,
   * two's complement: the values of a diff) comes out negative. */
  function varint() {
    let b = B[P++];
    if (b < 0x80) return b;
    if (b === undefined) truncated();
    let lo = b & 0x7f;
    for (let shift = 7; shift < 28; shift += 7) {
      b = B[P++];
      if (b === undefined) truncated();
      lo |= (b & 0x7f) << shift;
      if (b < 0x80) return lo;
    }
    b = B[P++];
    if (b === undefined) truncated();
    lo = (lo | ((b & 0x0f) << 28)) >>> 0;
    let hi = (b & 0x7f) >>> 4;
    if (b >= 0x80) {
      for (let shift = 3; ; shift += 7) {
        if (shift > 31) throw new Error('bad varint in profile');
        b = B[P++];
        if (b === undefined) truncated();
        hi |= (b & 0x7f) << shift;
        if (b < 0x80) break;
      }
    }
    hi |= 0;
    if (hi < 0) return -((~hi >>> 0) * 4294967296 + (~lo >>> 0) + 1);
    return hi * 4294967296 + lo;
  }

  /* The end of the length-delimited field starting at P. */
  function ends(limit) {
    const len = varint();
    if (len > limit - P) truncated();
    return P + len;
  }

  function skip(wire, limit) {
    if (wire === 0) varint();
    else if (wire === 1) P += 8;
    else if (wire === 2) P = ends(limit);
    else if (wire === 5) P += 4;
    else throw new Error('bad wire type ' + wire + ' in profile');
    if (P > limit) truncated();
  }

  /* A repeated integer field, packed (wire type 2) or not, into out. */
  function ints(wire, limit, out) {
    if (wire === 0) {
      out.push(varint());
    } else if (wire === 2) {
      const e = ends(limit);
      while (P < e) out.push(varint());
      if (P > e) truncated();
    } else {
      skip(wire, limit);
    }
  }

  const utf8 = new TextDecoder('utf-8');

  function string(bytes) {
    if (bytes.length < 64) {
      let ascii = true;
      for (let i = 0; i < bytes.length; i++) if (bytes[i] >= 0x80) ascii = false;
      if (ascii) return String.fromCharCode.apply(null, bytes);
    }
    return utf8.decode(bytes);
  }

  /* The raw message: string indexes unresolved, ids as in the proto, every
   * repeated message flattened into parallel arrays. */
  function parse(buf) {
    const r = {
      types: [], periodType: null, strings: [], comments: [],
      defaultType: 0, period: 0, timeNanos: 0, durationNanos: 0,
      /* samples: their location ids, values and labels, by offsets */
      locIds: null, locOff: [0], values: null, valOff: [0],
      labKey: [], labStr: [], labNum: [], labUnit: [], labOff: [0],
      /* mappings, locations (their lines by offsets), functions */
      mapId: [], mapStart: [], mapOffset: [], mapFile: [],
      locId: [], locMap: [], locAddr: [], lineOff: [0], lineFn: [], lineNo: [],
      fnId: [], fnName: [], fnFile: [],
    };
    B = buf;
    P = 0;
    const end = buf.length;
    const more = (a) => {
      const b = new Float64Array(a.length * 2);
      b.set(a);
      return b;
    };
    let ids = new Float64Array(4096), nids = 0;
    let vals = new Float64Array(4096), nvals = 0;
    const valueType = (e) => {
      const vt = {type: 0, unit: 0};
      while (P < e) {
        const key = varint(), f = key >>> 3, w = key & 7;
        if (w === 0 && f === 1) vt.type = varint();
        else if (w === 0 && f === 2) vt.unit = varint();
        else skip(w, e);
      }
      return vt;
    };
    while (P < end) {
      const key = varint(), f = key >>> 3, w = key & 7;
      if (w === 2 && f >= 1 && f <= 6 || w === 2 && f === 11) {
        const e = ends(end);
        if (f === 1) {
          r.types.push(valueType(e));
        } else if (f === 2) {
          while (P < e) {
            const k = varint(), sf = k >>> 3, sw = k & 7;
            if ((sf === 1 || sf === 2) && (sw === 0 || sw === 2)) {
              /* the hot loop: a million location ids in a big profile */
              const se = sw === 2 ? ends(e) : 0;
              do {
                if (sf === 1) {
                  if (nids === ids.length) ids = more(ids);
                  ids[nids++] = varint();
                } else {
                  if (nvals === vals.length) vals = more(vals);
                  vals[nvals++] = varint();
                }
              } while (P < se);
              if (P > e) truncated();
            } else if (sf === 3 && sw === 2) {
              const le = ends(e);
              let lk = 0, ls = 0, ln = 0, lu = 0;
              while (P < le) {
                const k2 = varint(), lf = k2 >>> 3, lw = k2 & 7;
                if (lw !== 0) skip(lw, le);
                else if (lf === 1) lk = varint();
                else if (lf === 2) ls = varint();
                else if (lf === 3) ln = varint();
                else if (lf === 4) lu = varint();
                else varint();
              }
              r.labKey.push(lk);
              r.labStr.push(ls);
              r.labNum.push(ln);
              r.labUnit.push(lu);
            } else skip(sw, e);
          }
          r.locOff.push(nids);
          r.valOff.push(nvals);
          r.labOff.push(r.labKey.length);
        } else if (f === 3) {
          let id = 0, start = 0, offset = 0, file = 0;
          while (P < e) {
            const k = varint(), mf = k >>> 3, mw = k & 7;
            if (mw !== 0) skip(mw, e);
            else if (mf === 1) id = varint();
            else if (mf === 2) start = varint();
            else if (mf === 4) offset = varint();
            else if (mf === 5) file = varint();
            else varint();
          }
          r.mapId.push(id);
          r.mapStart.push(start);
          r.mapOffset.push(offset);
          r.mapFile.push(file);
        } else if (f === 4) {
          let id = 0, map = 0, addr = 0;
          while (P < e) {
            const k = varint(), lf = k >>> 3, lw = k & 7;
            if (lf === 4 && lw === 2) {
              const le = ends(e);
              let fn = 0, line = 0;
              while (P < le) {
                const k2 = varint(), nf = k2 >>> 3, nw = k2 & 7;
                if (nw !== 0) skip(nw, le);
                else if (nf === 1) fn = varint();
                else if (nf === 2) line = varint();
                else varint();
              }
              r.lineFn.push(fn);
              r.lineNo.push(line);
            } else if (lw !== 0) skip(lw, e);
            else if (lf === 1) id = varint();
            else if (lf === 2) map = varint();
            else if (lf === 3) addr = varint();
            else varint();
          }
          r.locId.push(id);
          r.locMap.push(map);
          r.locAddr.push(addr);
          r.lineOff.push(r.lineFn.length);
        } else if (f === 5) {
          let id = 0, name = 0, file = 0;
          while (P < e) {
            const k = varint(), ff = k >>> 3, fw = k & 7;
            if (fw !== 0) skip(fw, e);
            else if (ff === 1) id = varint();
            else if (ff === 2) name = varint();
            else if (ff === 4) file = varint();
            else varint();
          }
          r.fnId.push(id);
          r.fnName.push(name);
          r.fnFile.push(file);
        } else if (f === 6) {
          r.strings.push(string(B.subarray(P, e)));
        } else {
          r.periodType = valueType(e);
        }
        if (P > e) truncated();
        P = e;
      } else if (w === 0 && f === 9) r.timeNanos = varint();
      else if (w === 0 && f === 10) r.durationNanos = varint();
      else if (w === 0 && f === 12) r.period = varint();
      else if (f === 13) ints(w, end, r.comments);
      else if (w === 0 && f === 14) r.defaultType = varint();
      else skip(w, end);
    }
    B = null;
    r.locIds = ids.subarray(0, nids);
    r.values = vals.subarray(0, nvals);
    return r;
  }

  /* ---- the model ---------------------------------------------------- */

  function basename(path) {
    const i = path.lastIndexOf('/');
    return i >= 0 ? path.slice(i + 1) : path;
  }

  /* id -> index of ids[]: an array when the ids are small (as every
   * encoder makes them), a Map otherwise. */
  function indexer(ids) {
    let max = 0;
    for (const id of ids) if (id > max) max = id;
    if (max <= 4 * ids.length + 64) {
      const a = new Int32Array(max + 1).fill(-1);
      ids.forEach((id, i) => (a[id] = i));
      return (id) => (id <= max ? a[id] : -1);
    }
    const m = new Map();
    ids.forEach((id, i) => m.set(id, i));
    return (id) => {
      const i = m.get(id);
      return i === undefined ? -1 : i;
    };
  }

  /* Builds the model from the raw message: functions deduplicated by (name,
   * file) into dense ids, each sample's stack as those ids (leaf first,
   * inlined frames expanded), values nTypes per sample, labels as ids of
   * their (key, value). */
  function model(raw) {
    const str = (i) => (i >= 0 && i < raw.strings.length ? raw.strings[i] : '');
    const m = {
      types: raw.types.map((t) => ({type: str(t.type), unit: str(t.unit)})),
      comments: raw.comments.map(str),
      timeNanos: raw.timeNanos,
      durationNanos: raw.durationNanos,
      defaultType: 0,
      fnName: [], fnFile: [],
    };
    const nt = m.types.length;
    const dflt = raw.defaultType ? str(raw.defaultType) : '';
    m.defaultType = Math.max(0, dflt ? m.types.findIndex((t) => t.type === dflt) : nt - 1);

    const fnIndex = new Map();
    const dense = (name, file) => {
      const key = name + '\0' + file;
      let id = fnIndex.get(key);
      if (id === undefined) {
        id = m.fnName.length;
        fnIndex.set(key, id);
        m.fnName.push(name);
        m.fnFile.push(file);
      }
      return id;
    };
    const fnOf = indexer(raw.fnId);
    const fnDense = raw.fnId.map((_, i) => dense(str(raw.fnName[i]), str(raw.fnFile[i])));
    const mapOf = indexer(raw.mapId);
    /* Each location's frames, leaf (innermost inlined) first. */
    const nloc = raw.locId.length;
    const frameOff = new Uint32Array(nloc + 1);
    const frames = [];
    const frameLines = [];
    for (let l = 0; l < nloc; l++) {
      frameOff[l] = frames.length;
      for (let i = raw.lineOff[l]; i < raw.lineOff[l + 1]; i++) {
        const f = fnOf(raw.lineFn[i]);
        if (f < 0) continue;
        frames.push(fnDense[f]);
        frameLines.push(raw.lineNo[i]);
      }
      if (frames.length === frameOff[l]) {
        const mi = mapOf(raw.locMap[l]);
        const addr = raw.locAddr[l];
        frames.push(dense(mi >= 0 && raw.mapFile[mi]
          ? basename(str(raw.mapFile[mi])) + '+0x' + (addr - raw.mapStart[mi] + raw.mapOffset[mi]).toString(16)
          : '0x' + addr.toString(16), ''));
        frameLines.push(0);
      }
    }
    frameOff[nloc] = frames.length;
    const locOf = indexer(raw.locId);

    const n = raw.locOff.length - 1;
    const locs = new Int32Array(raw.locIds.length);
    let total = 0;
    for (let i = 0; i < locs.length; i++) {
      const l = (locs[i] = locOf(raw.locIds[i]));
      if (l >= 0) total += frameOff[l + 1] - frameOff[l];
    }
    m.n = n;
    m.stackOff = new Uint32Array(n + 1);
    m.stackFn = new Int32Array(total);
    m.stackLine = new Int32Array(total);
    m.values = new Float64Array(n * nt);
    m.negative = false;
    let k = 0;
    for (let s = 0; s < n; s++) {
      m.stackOff[s] = k;
      for (let i = raw.locOff[s]; i < raw.locOff[s + 1]; i++) {
        const l = locs[i];
        if (l < 0) continue;
        for (let j = frameOff[l]; j < frameOff[l + 1]; j++, k++) {
          m.stackFn[k] = frames[j];
          m.stackLine[k] = frameLines[j];
        }
      }
      const v0 = raw.valOff[s], v1 = raw.valOff[s + 1];
      for (let t = 0; t < nt && v0 + t < v1; t++) {
        const v = raw.values[v0 + t];
        m.values[s * nt + t] = v;
        if (v < 0) m.negative = true;
      }
    }
    m.stackOff[n] = k;

    /* Labels: each (key, value) an id; per key its values' ids and sample
     * counts. A numeric label's value is its number and unit. */
    m.labOff = Uint32Array.from(raw.labOff);
    m.labId = new Int32Array(raw.labKey.length);
    m.labIdKey = [];
    m.labIdValue = [];
    m.labelKeys = new Map();
    const ids = new Map();
    const units = raw.labUnit;
    for (let i = 0; i < raw.labKey.length; i++) {
      const key = str(raw.labKey[i]);
      const value = raw.labStr[i] ? str(raw.labStr[i]) : String(raw.labNum[i]) + (units[i] ? ' ' + str(units[i]) : '');
      const kv = key + '\0' + value;
      let id = ids.get(kv);
      if (id === undefined) {
        id = m.labIdKey.length;
        ids.set(kv, id);
        m.labIdKey.push(key);
        m.labIdValue.push(value);
      }
      m.labId[i] = id;
      let values = m.labelKeys.get(key);
      if (!values) m.labelKeys.set(key, (values = new Map()));
      values.set(value, (values.get(value) || 0) + 1);
    }
    return m;
  }

  /* The samples kept by a label filter ({key: value, ...}), or null for
   * all of them. */
  function keep(m, filter) {
    const keys = Object.keys(filter);
    if (keys.length === 0) return null;
    const want = new Uint8Array(m.labIdKey.length);
    m.labIdKey.forEach((k, id) => (want[id] = filter[k] === m.labIdValue[id] ? 1 : 0));
    const out = new Uint8Array(m.n);
    for (let s = 0; s < m.n; s++) {
      let hits = 0;
      for (let i = m.labOff[s]; i < m.labOff[s + 1]; i++) hits += want[m.labId[i]];
      out[s] = hits === keys.length ? 1 : 0;
    }
    return out;
  }

  /* The call tree for sample type t over the kept samples. Node 0 is the
   * root; each node has its function, its net value (val) and the sum of
   * its samples' absolute values (abs: the width, so that growth and
   * shrinkage of a diff both show), the range of its lines, and its
   * children sorted widest first. With focus >= 0 only the stacks through
   * that function count, cut above its outermost frame. */
  function tree(m, t, kept, focus) {
    const nt = m.types.length;
    let cap = 1024;
    let parent = new Int32Array(cap), fn = new Int32Array(cap);
    let val = new Float64Array(cap), abs = new Float64Array(cap);
    let lmin = new Int32Array(cap), lmax = new Int32Array(cap);
    let count = 1;
    parent[0] = -1;
    fn[0] = -1;
    /* (parent, function) -> child: open addressing over typed arrays (a
     * Map of a million composite keys was most of the time). */
    let mask = 2047;
    let slots = new Int32Array(mask + 1);
    const slot = (node, f) => {
      let h = (Math.imul(node, 0x9e3779b1) ^ Math.imul(f + 1, 0x85ebca77)) & mask;
      for (;;) {
        const c = slots[h];
        if (c === 0 || (parent[c] === node && fn[c] === f)) return h;
        h = (h + 1) & mask;
      }
    };
    const grow = () => {
      const more = (a, T) => {
        const b = new T(cap * 2);
        b.set(a);
        return b;
      };
      parent = more(parent, Int32Array);
      fn = more(fn, Int32Array);
      val = more(val, Float64Array);
      abs = more(abs, Float64Array);
      lmin = more(lmin, Int32Array);
      lmax = more(lmax, Int32Array);
      cap *= 2;
      mask = mask * 2 + 1;
      slots = new Int32Array(mask + 1);
      for (let c = 1; c < count; c++) slots[slot(parent[c], fn[c])] = c;
    };
    for (let s = 0; s < m.n; s++) {
      if (kept && !kept[s]) continue;
      const v = m.values[s * nt + t];
      if (v === 0) continue;
      const a = v < 0 ? -v : v;
      const start = m.stackOff[s];
      let from = m.stackOff[s + 1] - 1;
      if (focus >= 0) {
        while (from >= start && m.stackFn[from] !== focus) from--;
        if (from < start) continue;
      }
      let node = 0;
      val[0] += v;
      abs[0] += a;
      for (let i = from; i >= start; i--) {
        const f = m.stackFn[i];
        const line = m.stackLine[i];
        const h = slot(node, f);
        let c = slots[h];
        if (c === 0) {
          if (count === cap) {
            grow();
            c = count++;
            slots[slot(node, f)] = c;
          } else {
            c = count++;
            slots[h] = c;
          }
          parent[c] = node;
          fn[c] = f;
          lmin[c] = line;
          lmax[c] = line;
        } else if (line) {
          if (!lmin[c] || line < lmin[c]) lmin[c] = line;
          if (line > lmax[c]) lmax[c] = line;
        }
        val[c] += v;
        abs[c] += a;
        node = c;
      }
    }
    const first = new Uint32Array(count + 1);
    for (let i = 1; i < count; i++) first[parent[i] + 1]++;
    for (let i = 0; i < count; i++) first[i + 1] += first[i];
    const kids = new Uint32Array(Math.max(count - 1, 0));
    const fill = first.slice(0, count);
    for (let i = 1; i < count; i++) kids[fill[parent[i]]++] = i;
    for (let i = 0; i < count; i++) {
      const a = first[i], b = first[i + 1];
      if (b - a === 2) {
        if (abs[kids[a + 1]] > abs[kids[a]]) {
          const x = kids[a];
          kids[a] = kids[a + 1];
          kids[a + 1] = x;
        }
      } else if (b - a > 2) {
        kids.subarray(a, b).sort((x, y) => abs[y] - abs[x]);
      }
    }
    return {
      count, parent: parent.subarray(0, count), fn: fn.subarray(0, count),
      val: val.subarray(0, count), abs: abs.subarray(0, count),
      lmin: lmin.subarray(0, count), lmax: lmax.subarray(0, count), first, kids,
    };
  }

  /* Per function: flat (the samples where it is the leaf) and cum (the
   * samples it is anywhere in, once per sample), for type t over the kept
   * samples; and the totals. */
  function top(m, t, kept) {
    const nt = m.types.length;
    const F = m.fnName.length;
    const flat = new Float64Array(F);
    const cum = new Float64Array(F);
    const seen = new Int32Array(F).fill(-1);
    let total = 0, grown = 0, shrunk = 0;
    for (let s = 0; s < m.n; s++) {
      if (kept && !kept[s]) continue;
      const v = m.values[s * nt + t];
      if (v === 0) continue;
      total += v;
      if (v > 0) grown += v;
      else shrunk -= v;
      const start = m.stackOff[s], end = m.stackOff[s + 1];
      if (end > start) flat[m.stackFn[start]] += v;
      for (let i = start; i < end; i++) {
        const f = m.stackFn[i];
        if (seen[f] !== s) {
          seen[f] = s;
          cum[f] += v;
        }
      }
    }
    const rows = [];
    for (let f = 0; f < F; f++) if (flat[f] !== 0 || cum[f] !== 0) rows.push(f);
    return {flat, cum, total, grown, shrunk, rows};
  }

  /* The functions whose name matches re, and the net value of the kept
   * samples with such a function anywhere in their stack. */
  function search(m, t, kept, re) {
    const nt = m.types.length;
    const hit = new Uint8Array(m.fnName.length);
    let fns = 0;
    for (let f = 0; f < hit.length; f++) {
      if (re.test(m.fnName[f])) {
        hit[f] = 1;
        fns++;
      }
    }
    let value = 0;
    if (fns > 0) {
      for (let s = 0; s < m.n; s++) {
        if (kept && !kept[s]) continue;
        for (let i = m.stackOff[s]; i < m.stackOff[s + 1]; i++) {
          if (hit[m.stackFn[i]]) {
            value += m.values[s * nt + t];
            break;
          }
        }
      }
    }
    return {hit, fns, value};
  }

  /* Bytes of a profile answer (gzipped as served, or not) -> the model. */
  async function load(bytes) {
    if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) {
      const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'));
      bytes = new Uint8Array(await new Response(stream).arrayBuffer());
    }
    return model(parse(bytes));
  }

  return {load, parse, model, keep, tree, top, search};
})();
