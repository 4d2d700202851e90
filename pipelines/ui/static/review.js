// The Review view's keyboard shortcuts: each label button names its key in data-key (1, 2, 3, s); pressing
// the key clicks the button, unless someone is typing in a field or holds a modifier.
(function () {
  "use strict";
  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey || /^(INPUT|TEXTAREA|SELECT)$/.test(event.target.tagName)) {
      return;
    }
    var button = document.querySelector('#label-form button[data-key="' + event.key.toLowerCase() + '"]');
    if (button) {
      event.preventDefault();
      button.click();
    }
  });
})();
