// The region editor: drag a rectangle over the picture (mouse, pen or finger: pointer events) and the
// form's x, y, w, h are set to it in the image's own pixels. Served by the bot itself, no other script.
(() => {
  "use strict";
  const stage = document.getElementById("stage");
  const picture = document.getElementById("picture");
  const box = document.getElementById("box");
  const form = document.getElementById("region-form");
  const chosen = document.getElementById("chosen");
  if (!stage || !picture || !box || !form) return;
  const width = Number(picture.dataset.width);
  const height = Number(picture.dataset.height);
  let start = null;

  // A pointer's place on the picture, in the image's pixels, kept inside the picture.
  const at = (event) => {
    const r = picture.getBoundingClientRect();
    const x = ((event.clientX - r.left) * width) / r.width;
    const y = ((event.clientY - r.top) * height) / r.height;
    return [Math.min(width, Math.max(0, x)), Math.min(height, Math.max(0, y))];
  };

  const show = (a, b) => {
    const left = Math.round(Math.min(a[0], b[0]));
    const top = Math.round(Math.min(a[1], b[1]));
    const w = Math.round(Math.max(a[0], b[0])) - left;
    const h = Math.round(Math.max(a[1], b[1])) - top;
    form.elements.x.value = left;
    form.elements.y.value = top;
    form.elements.w.value = w;
    form.elements.h.value = h;
    box.style.left = (100 * left) / width + "%";
    box.style.top = (100 * top) / height + "%";
    box.style.width = (100 * w) / width + "%";
    box.style.height = (100 * h) / height + "%";
    box.hidden = w === 0 || h === 0;
    chosen.textContent = w && h ? `${w}×${h} (${left}, ${top})` : "–";
  };

  stage.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    event.preventDefault();
    start = at(event);
    stage.setPointerCapture(event.pointerId);
    show(start, start);
  });
  stage.addEventListener("pointermove", (event) => {
    if (start) show(start, at(event));
  });
  stage.addEventListener("pointerup", (event) => {
    if (!start) return;
    show(start, at(event));
    start = null;
  });
  stage.addEventListener("pointercancel", () => {
    start = null;
  });
})();
