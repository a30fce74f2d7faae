// The review queue's keyboard shortcuts: a key clicks the button or link whose data-key names it
// (so the page works the same without this file); "?" shows the list. Keys typed into a field
// (the comment box) are left alone.
(function () {
  "use strict";
  var help = document.getElementById("shortcuts");
  var sent = false;

  function typing(target) {
    var tag = target && target.tagName ? target.tagName.toLowerCase() : "";
    return tag === "input" || tag === "textarea" || tag === "select" || (target && target.isContentEditable);
  }

  document.addEventListener("keydown", function (event) {
    if (sent || event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) {
      return;
    }
    if (event.key === "?") {
      if (help) help.hidden = !help.hidden;
      event.preventDefault();
      return;
    }
    if (event.key === "Escape") {
      if (help) help.hidden = true;
      return;
    }
    var targets = document.querySelectorAll("[data-key]");
    for (var i = 0; i < targets.length; i++) {
      if (targets[i].getAttribute("data-key").split(" ").indexOf(event.key) >= 0) {
        event.preventDefault();
        sent = true; // one action per page: a second key would race the first one's request
        targets[i].click();
        return;
      }
    }
  });
})();
