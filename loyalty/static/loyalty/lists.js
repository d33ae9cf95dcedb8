// Change lists: a cell with long text shows its first lines, the whole text on hover (title).
(function () {
  "use strict";
  var LONG = 120;
  function clamp() {
    document.querySelectorAll("#result_list td, #result_list th.field-__str__").forEach(function (cell) {
      var text = cell.textContent.trim();
      if (text.length <= LONG || cell.querySelector("input, select, textarea, form")) { return; }
      var box = document.createElement("div");
      box.className = "clamp";
      box.title = text;
      while (cell.firstChild) { box.appendChild(cell.firstChild); }
      cell.appendChild(box);
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", clamp);
  } else {
    clamp();
  }
})();
