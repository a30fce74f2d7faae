// Replay in place: a replay form is sent with fetch and the page's replay summary and each replayed
// call's result are swapped in from the answer (the same page the plain POST renders), so the
// reader keeps their place. Without this file the forms post and the page comes back whole.
(function () {
  "use strict";

  function swap(fresh, id) {
    var old = document.getElementById(id);
    var next = fresh.getElementById(id);
    if (old && next) old.replaceWith(document.importNode(next, true));
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.classList || !form.classList.contains("replay-form") || !window.fetch) return;
    event.preventDefault();
    var button = form.querySelector("button[type=submit]");
    var label = button ? button.textContent : "";
    if (button) {
      button.disabled = true;
      button.textContent = "Replaying…";
    }
    fetch(form.action, {
      method: "POST",
      body: new URLSearchParams(new FormData(form)),
      credentials: "same-origin",
    })
      .then(function (response) {
        return response.text();
      })
      .then(function (text) {
        var fresh = new DOMParser().parseFromString(text, "text/html");
        if (!fresh.getElementById("replay")) {  // a refusal or an error page: show it whole
          document.open();
          document.write(text);
          document.close();
          return;
        }
        swap(fresh, "replay");
        var message = fresh.getElementById("message");
        var current = document.getElementById("message");
        if (current) current.remove();
        if (message) document.getElementById("replay").before(document.importNode(message, true));
        fresh.querySelectorAll(".replay-call").forEach(function (call) {
          swap(fresh, call.id);
        });
      })
      .catch(function (error) {
        if (button) button.insertAdjacentText("afterend", " " + error);
      })
      .finally(function () {
        if (button && button.isConnected) {
          button.disabled = false;
          button.textContent = label;
        }
      });
  });
})();
