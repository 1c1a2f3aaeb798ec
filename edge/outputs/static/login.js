/* MedTrack login page: the form posts itself (works without JS); keep the language choice. */
(function () {
  'use strict';
  document.addEventListener('DOMContentLoaded', function () {
    var form = document.getElementById('login-form');
    if (form && window.MT && MT.lang) form.action = '/login?lang=' + encodeURIComponent(MT.lang);
  });
})();
