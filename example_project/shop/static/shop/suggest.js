// The header search box's suggestions: fetched as the visitor types, shown under the box.
// beacon.js listens to clicks on the whole document, so a click on a suggestion
// (a data-synerise-item inside the fragment's autocomplete frame) is reported too.
(function () {
  "use strict";
  var input = document.querySelector("input[data-suggest-url]");
  if (!input) {
    return;
  }
  var box = input.parentNode.querySelector(".suggestions-box");
  var timer = null;
  input.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(function () {
      var query = input.value.trim();
      if (query.length < 2) {
        box.innerHTML = "";
        return;
      }
      fetch(input.dataset.suggestUrl + "?q=" + encodeURIComponent(query), {
        credentials: "same-origin",
      })
        .then(function (response) {
          return response.ok ? response.text() : "";
        })
        .then(function (html) {
          box.innerHTML = html;
        });
    }, 200);
  });
})();
