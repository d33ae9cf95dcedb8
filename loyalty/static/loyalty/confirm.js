// Asks before a button with data-confirm submits its form (no inline onclick: the admin's
// Content-Security-Policy allows only scripts from this site).
document.addEventListener("click", function (event) {
  var button = event.target.closest("[data-confirm]");
  if (button && !window.confirm(button.getAttribute("data-confirm"))) {
    event.preventDefault();
  }
});
