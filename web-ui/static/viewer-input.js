// Mouse, pen, touch, wheel and keyboard → the viewer's actions. `ctl` is what viewer.js hands
// over: the View, the current tool, the window and image stepping, and `schedule()` to repaint.
// The measuring tools only report where the pointer is (`ctl.measure`); viewer.js owns them.

/** Tools whose drag draws a measurement rather than moving the image. */
export const MEASURE_TOOLS = new Set(['length', 'angle', 'ellipse', 'rect']);

/** Listens on `canvas` (pointer, wheel) and the document (keys). */
export function bindInput(canvas, stage, ctl) {
  const { view } = ctl;
  const pointers = new Map(); // pointerId -> {x, y}
  let drag = null; // one-pointer drag: {tool, x0, y0, x, y, ...}
  let pinch = null; // two-pointer gesture

  function localPoint(ev) {
    const r = canvas.getBoundingClientRect();
    return { x: ev.clientX - r.left, y: ev.clientY - r.top };
  }

  const zoomAbout = (f, q, fromZoom, fromPan) =>
    view.zoomAbout(f, q, stage.clientWidth, stage.clientHeight, fromZoom, fromPan);

  function toolFor(ev) {
    if (ev.pointerType === 'mouse') {
      if (ev.button === 1) return 'pan';
      if (ev.button === 2) return 'zoom';
    }
    return ctl.tool();
  }

  canvas.addEventListener('pointerdown', (ev) => {
    canvas.setPointerCapture(ev.pointerId);
    const p = localPoint(ev);
    pointers.set(ev.pointerId, p);
    ev.preventDefault();
    if (pointers.size === 2) {
      if (drag && MEASURE_TOOLS.has(drag.tool)) ctl.measure('cancel', p);
      drag = null; // a second finger turns the gesture into pinch/pan
      const [a, b] = [...pointers.values()];
      pinch = {
        d0: Math.hypot(a.x - b.x, a.y - b.y) || 1,
        m0: { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 },
        zoom: view.zoom,
        pan: { x: view.panX, y: view.panY },
      };
      return;
    }
    if (pointers.size > 2) return;
    const tool = toolFor(ev);
    if (MEASURE_TOOLS.has(tool)) ctl.measure('start', p);
    drag = { tool, x0: p.x, y0: p.y, x: p.x, y: p.y, acc: 0, win: tool === 'wl' ? ctl.baseWindow() : null,
      range: ctl.valueRange(), zoom: view.zoom, pan: { x: view.panX, y: view.panY } };
  });

  canvas.addEventListener('pointermove', (ev) => {
    if (!pointers.has(ev.pointerId)) return;
    const p = localPoint(ev);
    pointers.set(ev.pointerId, p);
    if (pinch && pointers.size >= 2) {
      const [a, b] = [...pointers.values()];
      const d = Math.hypot(a.x - b.x, a.y - b.y) || 1;
      const m = { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 };
      zoomAbout(d / pinch.d0, pinch.m0, pinch.zoom, pinch.pan);
      view.panX += m.x - pinch.m0.x;
      view.panY += m.y - pinch.m0.y;
      ctl.schedule();
      return;
    }
    if (!drag) return;
    const dx = p.x - drag.x;
    const dy = p.y - drag.y;
    drag.x = p.x;
    drag.y = p.y;
    switch (drag.tool) {
      case 'wl': {
        // horizontal = width, vertical = center (down = higher center = darker)
        const k = drag.range / 400;
        const tx = p.x - drag.x0;
        const ty = p.y - drag.y0;
        ctl.setWindow(drag.win.center + ty * k, drag.win.width + tx * k);
        break;
      }
      case 'pan':
        view.panX += dx;
        view.panY += dy;
        ctl.schedule();
        break;
      case 'zoom':
        zoomAbout(Math.exp(-(p.y - drag.y0) / 150), { x: drag.x0, y: drag.y0 }, drag.zoom, drag.pan);
        ctl.schedule();
        break;
      case 'scroll': {
        drag.acc += dy;
        const stepPx = 8;
        while (Math.abs(drag.acc) >= stepPx) {
          const s = Math.sign(drag.acc);
          drag.acc -= s * stepPx;
          ctl.step(s);
        }
        break;
      }
      default:
        if (MEASURE_TOOLS.has(drag.tool)) ctl.measure('move', p);
        break;
    }
  });

  function endPointer(ev) {
    if (drag && MEASURE_TOOLS.has(drag.tool) && pointers.size === 1) {
      ctl.measure(ev.type === 'pointercancel' ? 'cancel' : 'end', localPoint(ev));
    }
    pointers.delete(ev.pointerId);
    if (pointers.size < 2) pinch = null;
    if (pointers.size === 0) drag = null;
    else if (pointers.size === 1 && !drag) {
      // lifting one finger of two: continue as a pan with the other, never as W/L
      const [p] = [...pointers.values()];
      drag = { tool: 'pan', x0: p.x, y0: p.y, x: p.x, y: p.y, acc: 0 };
    }
  }
  canvas.addEventListener('pointerup', endPointer);
  canvas.addEventListener('pointercancel', endPointer);
  canvas.addEventListener('contextmenu', (ev) => ev.preventDefault());

  let wheelAcc = 0;
  canvas.addEventListener('wheel', (ev) => {
    ev.preventDefault();
    const unit = ev.deltaMode === 1 ? 33 : ev.deltaMode === 2 ? 400 : 1;
    const dy = ev.deltaY * unit;
    if (ev.ctrlKey || ev.metaKey) {
      zoomAbout(Math.exp(-dy / 300), localPoint(ev));
      ctl.schedule();
      return;
    }
    wheelAcc += dy;
    if (Math.abs(wheelAcc) < 40) return;
    ctl.step(Math.sign(wheelAcc));
    wheelAcc = 0;
  }, { passive: false });

  document.addEventListener('keydown', (ev) => {
    const t = ev.target;
    if (t && (t.isContentEditable || /^(INPUT|SELECT|TEXTAREA)$/.test(t.tagName))) return;
    if (ev.altKey || ev.ctrlKey || ev.metaKey) return;
    let handled = true;
    switch (ev.key) {
      case 'ArrowDown': case 'ArrowRight': ctl.step(1); break;
      case 'ArrowUp': case 'ArrowLeft': ctl.step(-1); break;
      case 'PageDown': ctl.step(10); break;
      case 'PageUp': ctl.step(-10); break;
      case 'Home': ctl.show(0); break;
      case 'End': ctl.show(ctl.count() - 1); break;
      case ' ': ctl.act('cine'); break;
      case 'i': ctl.act('invert'); break;
      case 'r': ctl.act('rotate'); break;
      case 'k': ctl.act('key'); break;
      case 'Escape': ctl.act('reset'); break;
      case 'Delete': case 'Backspace': ctl.act('unmeasure'); break;
      default: handled = false;
    }
    if (handled) ev.preventDefault();
  });
}
