// athyper dashboard: confirmations, selections and live numbers. The
// pages work without it; it only saves reloading.
(function () {
  "use strict";
  var body = document.body;
  var base = body.getAttribute("data-base") || "";
  var every = parseInt(body.getAttribute("data-refresh") || "0", 10);
  var queue = body.getAttribute("data-queue") || "";

  // Ask before destructive actions.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var submitter = event.submitter;
    var message = (submitter && submitter.getAttribute("data-confirm")) || form.getAttribute("data-confirm");
    if (message && !window.confirm(message)) {
      event.preventDefault();
    }
  });

  // Select all, and buttons that need a selection.
  function selected(formId) {
    return document.querySelectorAll('input[name="ids"][form="' + formId + '"]:checked').length;
  }
  function refreshButtons() {
    document.querySelectorAll("[data-needs-selection]").forEach(function (button) {
      var formId = button.getAttribute("form");
      button.disabled = selected(formId) === 0;
    });
  }
  document.querySelectorAll("input[data-select-all]").forEach(function (all) {
    var formId = all.getAttribute("data-select-all");
    all.addEventListener("change", function () {
      document.querySelectorAll('input[name="ids"][form="' + formId + '"]').forEach(function (box) {
        box.checked = all.checked;
      });
      refreshButtons();
    });
  });
  document.addEventListener("change", function (event) {
    if (event.target && event.target.name === "ids") {
      refreshButtons();
    }
  });
  refreshButtons();

  if (!every || every < 500 || !window.fetch) {
    return;
  }

  var live = document.getElementById("live");
  var liveText = document.getElementById("live-text");
  var updated = document.getElementById("updated");
  var formatter = new Intl.NumberFormat("en-US");
  var states = ["waiting", "delayed", "active", "completed", "failed"];

  function setText(el, n) {
    var text = formatter.format(n);
    if (el.textContent !== text) {
      el.textContent = text;
    }
    if (el.classList.contains("count") || el.classList.contains("side-failed")) {
      el.classList.toggle("zero", n === 0);
    }
  }

  function apply(data) {
    data.queues.forEach(function (q) {
      states.forEach(function (state) {
        var key = q.name + "/" + state;
        document.querySelectorAll("[data-count]").forEach(function (el) {
          if (el.getAttribute("data-count") === key) {
            setText(el, q[state]);
          }
        });
      });
    });
    Object.keys(data.totals).forEach(function (state) {
      document.querySelectorAll('[data-total="' + state + '"]').forEach(function (el) {
        setText(el, data.totals[state]);
      });
    });
    document.querySelectorAll("[data-hour]").forEach(function (el) {
      setText(el, data.hour[el.getAttribute("data-hour")]);
    });
    document.querySelectorAll("[data-chart]").forEach(function (el) {
      // The chart is drawn by the server, which escapes what it holds.
      el.innerHTML = data.hour.svg;
    });
    (data.breakers || []).forEach(function (b) {
      document.querySelectorAll("[data-breaker]").forEach(function (el) {
        if (el.getAttribute("data-breaker") === b.name && el.textContent !== b.state) {
          el.textContent = b.state;
          el.className = "badge breaker-" + b.state;
        }
      });
    });
    var changed = document.getElementById("changed");
    if (changed) {
      var watch = changed.getAttribute("data-watch").split("/");
      var state = watch.pop();
      var name = watch.join("/");
      var seen = parseInt(changed.getAttribute("data-seen"), 10);
      data.queues.forEach(function (q) {
        if (q.name === name) {
          changed.classList.toggle("hidden", q[state] === seen);
        }
      });
    }
    if (updated) {
      updated.textContent = "updated " + new Date(data.at_ms).toISOString().substring(11, 19) + " UTC";
    }
  }

  function status(ok) {
    if (!live) return;
    live.classList.toggle("on", ok);
    live.classList.toggle("off", !ok);
    liveText.textContent = ok ? "live" : "offline";
  }

  function tick() {
    if (document.hidden) {
      window.setTimeout(tick, every);
      return;
    }
    var url = base + "/api/summary" + (queue ? "?queue=" + encodeURIComponent(queue) : "");
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) throw new Error(response.status);
        return response.json();
      })
      .then(function (data) {
        apply(data);
        status(true);
      })
      .catch(function () {
        status(false);
      })
      .then(function () {
        window.setTimeout(tick, every);
      });
  }
  status(true);
  window.setTimeout(tick, every);
})();
