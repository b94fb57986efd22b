// Key images for the viewer: which images are key, the set the user toggles, and the list the
// "Key images" filter steps through. The study's key images come from its Key Object Selection
// documents (GET /api/studies/{uid}/key-images: this box's newest and every other system's);
// the whole set is saved as a new KOS (POST, one document per save, the newest is the current
// set) once the user has stopped marking for SAVE_DELAY_MS, or at once when the page is left
// (`flush(true)`: a keepalive request that outlives the page), so marking ten images in a row
// writes one document, not ten; a set that ends as it was saved writes none. Pure functions are exported for node's tests (web-ui/tests/viewer-keys.test.mjs);
// `KeySet` holds the state and talks to the server through the fetch it is given.

import { t } from './i18n.js';

/** Quiet time after the last toggle before the set is saved. */
export const SAVE_DELAY_MS = 3000;

/** An image's key: the instance, or `sop/frame` for a frame of a multi-frame instance. */
export function keyId(img) {
  if (!img) return '';
  return img.frames > 1 || img.frame > 1 ? `${img.sop}/${img.frame}` : img.sop;
}

/** The server's `{sop_uid, frame}` as a key. */
export function refId(r) {
  return r.frame ? `${r.sop_uid}/${r.frame}` : r.sop_uid;
}

/** Whether `img` is in `set` (a whole multi-frame instance marked elsewhere counts for each frame). */
export function isKey(set, img) {
  return !!img && (set.has(keyId(img)) || set.has(img.sop));
}

/** The POST's `images` field: ids, sorted so that the same set is always the same text. */
export function toField(set) {
  return [...set].sort().join(' ');
}

/** The filter's images, in the server's order (series, instance number, frame). */
export function keyList(all) {
  return (all || []).map((r) => ({
    sop: r.sop_uid,
    frame: r.frame || 1,
    // a referenced frame is of a multi-frame instance; its true count comes with /info
    frames: r.frame ? Math.max(2, r.frame) : 1,
    series: r.series_uid,
  }));
}

export class KeySet {
  /** `url`: the study's key-images API; `csrf`: the session's token; `changed()`: redraw. */
  constructor(url, csrf, changed, fetchFn = (...a) => fetch(...a), delayMs = SAVE_DELAY_MS) {
    this.url = url;
    this.csrf = csrf;
    this.changed = changed;
    this.fetch = fetchFn;
    this.ours = new Set();
    this.all = [];
    this.mayMark = false;
    this.loaded = false;
    this.saving = false;
    this.again = false;
    this.saves = 0;
    this.error = '';
    this.delayMs = delayMs;
    this.timer = null;
    /** Toggles not yet sent; `saved`: the set as the server has it (the POST's field). */
    this.pending = false;
    this.saved = null;
  }

  async load() {
    const r = await this.fetch(this.url, { headers: { Accept: 'application/json' } });
    if (!r.ok) throw new Error(`key images: HTTP ${r.status}`);
    const j = await r.json();
    this.all = Array.isArray(j.all) ? j.all : [];
    if (!this.saving && !this.pending) {
      this.ours = new Set((j.ours || []).map(refId));
      this.saved = toField(this.ours);
    }
    this.mayMark = !!j.may_mark;
    this.loaded = true;
    this.changed();
  }

  /** Marks or unmarks `img` and saves the set; false when this user may not. */
  toggle(img) {
    if (!img || !this.mayMark) {
      this.error = this.mayMark ? '' : t('Marking key images needs the physician (report) role.');
      this.changed();
      return false;
    }
    const id = keyId(img);
    if (this.ours.has(id)) this.ours.delete(id);
    else if (this.ours.has(img.sop)) this.ours.delete(img.sop);
    else this.ours.add(id);
    this.pending = true;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.flush(), this.delayMs);
    this.changed();
    return true;
  }

  /**
   * Sends the toggles made since the last save, if the set differs from the saved one.
   * `leaving`: the page is going away — one keepalive POST, not waited for.
   */
  flush(leaving = false) {
    clearTimeout(this.timer);
    this.timer = null;
    if (!this.pending) return;
    if (toField(this.ours) === this.saved && !this.saving) {
      this.pending = false; // marked and unmarked again: nothing to write
      return;
    }
    if (leaving) {
      this.pending = false;
      const body = new URLSearchParams({ csrf: this.csrf, images: toField(this.ours) });
      this.fetch(this.url, { method: 'POST', body, keepalive: true }).catch(() => {});
      return;
    }
    this.save();
  }

  /** One POST at a time; toggles made meanwhile go in the next one. */
  async save() {
    if (this.saving) {
      this.again = true;
      return;
    }
    this.saving = true;
    this.error = '';
    try {
      do {
        this.again = false;
        this.pending = false;
        const images = toField(this.ours);
        const body = new URLSearchParams({ csrf: this.csrf, images });
        const r = await this.fetch(this.url, { method: 'POST', body });
        if (!r.ok) {
          this.error = t('Key images not saved: {}', `${r.status} ${(await r.text()).trim()}`);
        } else {
          this.saves++;
          this.saved = images;
        }
      } while (this.again);
    } catch (err) {
      this.error = t('Key images not saved: {}', err && err.message ? err.message : err);
    } finally {
      this.saving = false;
    }
    // the filter's list includes other systems' documents: read it back
    try {
      await this.load();
    } catch (_e) {
      this.changed();
    }
  }
}
