// pacsbox viewer: "Compare" — another study of the same patient (from /api/studies/{uid}/priors,
// newest first) in a second pane beside the current one (stacked on a phone), scrolled together.
//
// The second pane is the viewer page itself, framed (`/viewer/{uid}?embed=1`, same origin
// only): it has its own series choice, window, zoom and pan because it is a whole viewer, and
// opening it goes through the same route, checks and audit record ("study.viewer") as opening
// that study directly. The two panes talk through their read-only hooks (`pacsboxViewer`):
// each announces a new image with a synchronous `pacsbox:image` event on its window, and this
// module shows the other pane's image nearest in slice position (viewer-sync.js).
// `window.pacsboxCompare` is a read-only hook for the browser tests (tests/browser/).

import { num, t } from './i18n.js';
import { api, describe, get } from './viewer-net.js';
import { syncIndex } from './viewer-sync.js';

/** `YYYYMMDD` as `YYYY-MM-DD` (anything else as it is). */
const showDate = (d) => (/^\d{8}$/.test(d) ? `${d.slice(0, 4)}-${d.slice(4, 6)}-${d.slice(6)}` : d);

export function initCompare(study, mainHook) {
  const $ = (id) => document.getElementById(id);
  const root = $('viewer');
  const btn = $('compare-btn');
  const menu = $('compare-menu');
  const list = $('prior-list');
  const pane = $('pane-prior');
  const frame = $('prior-frame');
  const label = $('prior-label');
  const sync = $('sync');
  const close = $('prior-close');
  const lockBtn = $('lock-offset');
  if (!root || !btn || !menu || !list || !pane || !frame || !label || !sync || !close || !lockBtn) return;

  const main = { name: 'main', win: window, hook: mainHook, geo: null };
  const prior = { name: 'prior', win: null, hook: null, geo: null };
  // lock: the offset lock, the two images (main, prior) that were lined up when it was pressed
  const st = { prior: null, priors: null, syncs: 0, by: null, error: '', lock: null };
  let driving = null; // the pane being moved by the other: its own event is not the user's
  let seq = 0;

  // ------------------------------------------------------------ the list of other studies
  function showMenu(open) {
    menu.hidden = !open;
    btn.setAttribute('aria-expanded', String(open));
    btn.classList.toggle('on', open);
  }

  async function loadPriors() {
    list.textContent = '';
    const li = document.createElement('li');
    li.className = 'note';
    li.textContent = t('Loading…');
    list.append(li);
    try {
      const r = await get(api.priors(study), 'application/json');
      const all = await r.json();
      st.priors = Array.isArray(all) ? all : [];
      st.error = '';
    } catch (err) {
      st.priors = null;
      st.error = describe(err);
    }
    list.textContent = '';
    if (!st.priors || !st.priors.length) {
      const note = document.createElement('li');
      note.className = 'note';
      note.textContent = st.priors ? t('No other study of this patient.') : t('Cannot list the other studies: {}', st.error);
      list.append(note);
      return;
    }
    for (const p of st.priors) {
      const item = document.createElement('li');
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'prior';
      b.dataset.study = p.uid;
      const when = document.createElement('strong');
      when.textContent = showDate(p.date || '') || t('no date');
      const what = document.createElement('span');
      const mods = (p.modalities || []).join('/');
      what.textContent = ` ${mods} ${p.description || ''} · ${t('{} series, {} images', num(p.series), num(p.instances))}`.replace(/\s+/g, ' ');
      b.append(when, what); // text, never HTML
      b.addEventListener('click', () => open(p));
      item.append(b);
      list.append(item);
    }
  }

  btn.addEventListener('click', () => {
    const opening = menu.hidden;
    showMenu(opening);
    if (opening) loadPriors();
  });

  // ------------------------------------------------------------ the second pane
  function open(p) {
    showMenu(false);
    detach();
    st.prior = p;
    st.syncs = 0;
    st.by = null;
    unlock();
    label.textContent = `${showDate(p.date || '')} ${(p.modalities || []).join('/')} ${p.description || ''}`.replace(/\s+/g, ' ').trim();
    pane.hidden = false;
    root.classList.add('comparing');
    frame.src = api.viewer(p.uid);
  }

  function detach() {
    prior.win = null;
    prior.hook = null;
    prior.geo = null;
  }

  close.addEventListener('click', () => {
    unlock();
    detach();
    st.prior = null;
    frame.src = 'about:blank';
    pane.hidden = true;
    root.classList.remove('comparing');
  });

  frame.addEventListener('load', () => {
    let w = null;
    try {
      w = frame.contentWindow;
      if (!w || !w.pacsboxViewer) return; // about:blank, or an error page (the frame shows it)
    } catch (_e) {
      return; // not our origin: never happens with our own URL
    }
    prior.win = w;
    prior.hook = w.pacsboxViewer;
    prior.geo = null;
    w.addEventListener('pacsbox:image', (ev) => follow(prior, main, ev.detail.index));
    w.addEventListener('pacsbox:series', () => { prior.geo = null; unlock(); resync(); });
    resync();
  });

  // ------------------------------------------------------------ synchronised scrolling
  /** The positions of a pane's images, fetched once per series (and image count). */
  function geometry(p) {
    const s = p.hook.state;
    const key = `${s.series}:${s.count}`;
    if (!p.geo || p.geo.key !== key) p.geo = { key, list: p.hook.positions() };
    return p.geo.list;
  }

  function follow(from, to, index) {
    if (!sync.checked || driving === from || !to.hook || !from.hook) return;
    const my = ++seq;
    Promise.all([geometry(from), geometry(to)]).then(([a, b]) => {
      if (my !== seq || !to.hook) return; // the user has moved on; the newer move decides
      const lock = st.lock && (from === main
        ? { from: st.lock.main, to: st.lock.prior }
        : { from: st.lock.prior, to: st.lock.main });
      const r = syncIndex(index, a, b, lock);
      if (r.index < 0) return;
      st.by = r.by;
      driving = to;
      try {
        to.hook.show(r.index);
      } finally {
        driving = null;
      }
      st.syncs++;
    }, () => {});
  }

  /** The prior follows the current pane (after the prior's series has loaded). */
  function resync() {
    if (!prior.hook) return;
    const h = prior.hook;
    h.whenReady().then(() => {
      if (prior.hook === h) follow(main, prior, main.hook.state.index);
    });
  }

  window.addEventListener('pacsbox:image', (ev) => follow(main, prior, ev.detail.index));
  window.addEventListener('pacsbox:series', () => { main.geo = null; unlock(); resync(); });
  sync.addEventListener('change', () => {
    if (sync.checked) resync();
    else unlock();
  });

  // ------------------------------------------------------------ the offset lock
  // Image Position is relative to the table: a prior in which the patient lay elsewhere is
  // offset by that distance. The user lines the two panes up (Sync scroll off, or scrolling the
  // prior), presses the lock, and from then on either pane moves the other by the same distance
  // from those two images. A new series in either pane, Sync off or another prior releases it.
  function unlock() {
    st.lock = null;
    lockBtn.setAttribute('aria-pressed', 'false');
  }

  lockBtn.addEventListener('click', () => {
    if (st.lock || !prior.hook) {
      unlock();
      return;
    }
    st.lock = { main: main.hook.state.index, prior: prior.hook.state.index };
    lockBtn.setAttribute('aria-pressed', 'true');
    sync.checked = true; // a lock is a way of scrolling together
  });

  const hook = {
    get state() {
      return {
        prior: st.prior ? st.prior.uid : null,
        priors: st.priors ? st.priors.map((p) => p.uid) : null,
        attached: !!prior.hook,
        sync: sync.checked,
        syncs: st.syncs,
        by: st.by,
        lock: st.lock ? { ...st.lock } : null,
      };
    },
  };
  Object.defineProperty(window, 'pacsboxCompare', { value: Object.freeze(hook), writable: false, configurable: false });
}
