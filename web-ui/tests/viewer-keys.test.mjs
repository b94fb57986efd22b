// Key image ids, the posted field, the filter's list and the one-save-at-a-time rule.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KeySet, isKey, keyId, keyList, refId, toField } from '../static/viewer-keys.js';

test('single images are keyed by instance, frames of multi-frame instances by frame', () => {
  assert.equal(keyId({ sop: '1.2', frame: 1, frames: 1 }), '1.2');
  assert.equal(keyId({ sop: '1.2', frame: 3, frames: 9 }), '1.2/3');
  assert.equal(keyId({ sop: '1.2', frame: 1, frames: 9 }), '1.2/1');
  assert.equal(refId({ sop_uid: '1.2', frame: null }), '1.2');
  assert.equal(refId({ sop_uid: '1.2', frame: 4 }), '1.2/4');
  // a whole instance marked by another system marks each of its frames
  assert.ok(isKey(new Set(['1.2']), { sop: '1.2', frame: 5, frames: 9 }));
  assert.ok(!isKey(new Set(['1.2/4']), { sop: '1.2', frame: 5, frames: 9 }));
});

test('the posted field is the same text for the same set', () => {
  assert.equal(toField(new Set(['1.3', '1.2/2', '1.10'])), toField(new Set(['1.10', '1.3', '1.2/2'])));
  assert.equal(toField(new Set(['b', 'a'])), 'a b');
});

test('the filter steps through the references in the server order', () => {
  const list = keyList([
    { sop_uid: '1.1', frame: null, series_uid: 's1' },
    { sop_uid: '2.1', frame: 3, series_uid: 's2' },
  ]);
  assert.deepEqual(list.map((x) => [x.sop, x.frame, x.series]), [['1.1', 1, 's1'], ['2.1', 3, 's2']]);
  assert.equal(keyId(list[1]), '2.1/3');
});

test('toggles made during a save are sent in one more save, and a refusal is reported', async () => {
  const posts = [];
  let release;
  const gate = new Promise((r) => { release = r; });
  const fetchFn = async (url, opts = {}) => {
    if (opts.method === 'POST') {
      posts.push(opts.body.get('images'));
      if (posts.length === 1) await gate;
      return { ok: true, status: 200, text: async () => '' };
    }
    return { ok: true, status: 200, json: async () => ({ ours: [], all: [], may_mark: true }) };
  };
  const k = new KeySet('/api/studies/1/key-images', 'tok', () => {}, fetchFn, 5);
  k.mayMark = true;
  k.toggle({ sop: '1.1', frame: 1, frames: 1 });
  while (!posts.length) await new Promise((r) => setTimeout(r, 1));
  k.toggle({ sop: '1.2', frame: 1, frames: 1 });
  k.toggle({ sop: '1.3', frame: 1, frames: 1 });
  await new Promise((r) => setTimeout(r, 20)); // the quiet time passes during the first save
  release();
  while (k.saving) await new Promise((r) => setTimeout(r, 1));
  assert.deepEqual(posts, ['1.1', '1.1 1.2 1.3']);
  const denied = new KeySet('/x', 'tok', () => {}, fetchFn);
  assert.equal(denied.toggle({ sop: '1.1', frame: 1, frames: 1 }), false);
  assert.match(denied.error, /report/);
});

test('ten quick marks are one save; a mark undone writes nothing; leaving sends at once', async () => {
  const posts = [];
  const fetchFn = async (url, opts = {}) => {
    if (opts.method === 'POST') {
      posts.push({ images: opts.body.get('images'), keepalive: !!opts.keepalive });
      return { ok: true, status: 200, text: async () => '' };
    }
    return { ok: true, status: 200, json: async () => ({ ours: [], all: [], may_mark: true }) };
  };
  const k = new KeySet('/k', 'tok', () => {}, fetchFn, 10);
  await k.load();
  for (let i = 0; i < 10; i++) k.toggle({ sop: `1.${i}`, frame: 1, frames: 1 });
  assert.equal(posts.length, 0, 'nothing sent while marking');
  while (k.saves < 1) await new Promise((r) => setTimeout(r, 2));
  assert.equal(posts.length, 1);
  assert.equal(posts[0].images.split(' ').length, 10);
  // marked and unmarked within the quiet time: the set is the saved one
  k.toggle({ sop: '2.1', frame: 1, frames: 1 });
  k.toggle({ sop: '2.1', frame: 1, frames: 1 });
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(posts.length, 1, 'no save of an unchanged set');
  // the page is left before the quiet time: one keepalive POST at once
  k.toggle({ sop: '2.2', frame: 1, frames: 1 });
  k.flush(true);
  assert.equal(posts.length, 2);
  assert.equal(posts[1].keepalive, true);
  assert.match(posts[1].images, /2\.2/);
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(posts.length, 2, 'and not again when the timer would have fired');
});
