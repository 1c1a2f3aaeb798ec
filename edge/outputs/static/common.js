/* MedTrack shared page helpers: language choice (browser languages, EN/FR) and translation. */
(function () {
  'use strict';
  var LANGS = ['en', 'fr'];

  function pickLang() {
    var forced = new URLSearchParams(location.search).get('lang');
    if (LANGS.indexOf(forced) >= 0) return forced;
    try {
      var saved = localStorage.getItem('medtrack.lang');
      if (LANGS.indexOf(saved) >= 0) return saved;
    } catch (e) { /* storage may be off */ }
    var prefs = (navigator.languages && navigator.languages.length) ? navigator.languages : [navigator.language || 'en'];
    for (var i = 0; i < prefs.length; i++) {
      var base = String(prefs[i]).toLowerCase().split('-')[0];
      if (LANGS.indexOf(base) >= 0) return base;
    }
    return 'en';
  }

  var MT = window.MT = { lang: pickLang(), strings: null };
  // Formatting locale: the browser's own variant of the chosen language (en-GB: 24 h clock).
  MT.locale = MT.lang;
  (navigator.languages || [navigator.language || '']).some(function (l) {
    if (String(l).toLowerCase().split('-')[0] === MT.lang) { MT.locale = l; return true; }
    return false;
  });

  MT.t = function (key, vars) {
    var table = MT.strings ? (MT.strings[MT.lang] || MT.strings.en) : null;
    var s = table && key in table ? table[key] : (MT.strings && key in MT.strings.en ? MT.strings.en[key] : key);
    if (vars) {
      Object.keys(vars).forEach(function (k) { s = s.split('{' + k + '}').join(String(vars[k])); });
    }
    return s;
  };

  MT.translate = function (root) {
    (root || document).querySelectorAll('[data-i18n]').forEach(function (el) {
      el.textContent = MT.t(el.getAttribute('data-i18n'));
    });
    document.documentElement.lang = MT.lang;
  };

  MT.ready = fetch('/static/i18n.json', { credentials: 'same-origin' })
    .then(function (r) { return r.json(); })
    .then(function (d) { MT.strings = d; MT.translate(document); })
    .catch(function () { /* keep the server-rendered text */ });

  document.addEventListener('DOMContentLoaded', function () {
    var btn = document.getElementById('lang');
    if (!btn) return;
    btn.addEventListener('click', function () {
      var other = MT.lang === 'fr' ? 'en' : 'fr';
      try { localStorage.setItem('medtrack.lang', other); } catch (e) { /* ignore */ }
      var url = new URL(location.href);
      url.searchParams.set('lang', other);
      location.href = url.pathname + url.search;
    });
  });
})();
