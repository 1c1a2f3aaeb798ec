/* MedTrack status page: live state (SSE, reconnects by itself), alarm banner with acknowledge,
   pause of monitoring for care, state tile coloured by alarm level (the emotion is its label),
   30-minute timeline (canvas), alarm history and device health. Vanilla JS, no build step. */
(function () {
  'use strict';
  var $ = function (id) { return document.getElementById(id); };
  var t = function (k, v) { return MT.t(k, v); };
  var WINDOW_MS = 30 * 60 * 1000;
  var LABEL_COLORS = { neutral: '#6b7280', happy: '#15803d', surprise: '#0e7490', sad: '#1d4ed8',
    fear: '#7e22ce', disgust: '#a16207', angry: '#b91c1c', unknown: '#d1d5db' };
  var S = { status: null, state: null, stateAt: 0, ageAt: 0, alarm: null, points: [], offset: 0,
    thresholds: { on: 0.55, off: 0.35, high: 0.85 }, silenceLong: 600, silenceAck: 120, labels: [],
    chartDirty: true, lastPoint: 0, retry: 1000, alarmAt: 0, health: {}, pauseMinutes: [5, 15, 30] };
  // what the tile's colour says: the server's LED pattern (edge.alarm.Signal.visual) -> tile level
  var LEVELS = { high: 'high', medium: 'medium', low: 'low', technical: 'technical', paused: 'paused',
    normal: 'calm' };

  // ------------------------------------------------------------------ helpers
  function csrf() {
    var m = document.cookie.match(/(?:^|;\s*)medtrack_csrf=([^;]+)/);
    return m ? decodeURIComponent(m[1]) : '';
  }
  function api(path, opts) {
    opts = opts || {};
    opts.credentials = 'same-origin';
    opts.headers = Object.assign({ Accept: 'application/json' }, opts.headers || {});
    return fetch(path, opts).then(function (r) {
      if (r.status === 401) { location.href = '/login?lang=' + MT.lang; throw new Error('401'); }
      return r.json().catch(function () { return {}; }).then(function (body) {
        if (!r.ok) { var e = new Error(body.error || r.statusText); e.status = r.status; e.body = body; throw e; }
        return body;
      });
    });
  }
  function post(path, data) {
    return api(path, { method: 'POST', body: JSON.stringify(data || {}),
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf() } });
  }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }
  function num(x, digits) {
    return new Intl.NumberFormat(MT.locale, { minimumFractionDigits: digits, maximumFractionDigits: digits }).format(x);
  }
  function pct(x) { return new Intl.NumberFormat(MT.locale, { style: 'percent', maximumFractionDigits: 0 }).format(x); }
  // one clock convention (12 or 24 h, the locale's) for the chart, the banner and the history
  var HOUR_CYCLE = null;
  function hourCycle() {
    if (!HOUR_CYCLE) {
      HOUR_CYCLE = new Intl.DateTimeFormat(MT.locale, { hour: 'numeric' }).resolvedOptions().hour12 ? 'h12' : 'h23';
    }
    return HOUR_CYCLE;
  }
  function timeOf(d, seconds) {
    var o = { hour: '2-digit', minute: '2-digit', hourCycle: hourCycle() };
    if (seconds) o.second = '2-digit';
    return d.toLocaleTimeString(MT.locale, o);
  }
  function dateTime(iso) {
    var d = new Date(iso);
    if (isNaN(d)) return iso || '';
    var today = new Date().toDateString() === d.toDateString();
    return today ? timeOf(d, true) : d.toLocaleDateString(MT.locale) + ' ' + timeOf(d, true);
  }
  function mmss(s) {
    s = Math.max(0, Math.ceil(s));
    return Math.floor(s / 60) + ':' + ('0' + (s % 60)).slice(-2);
  }
  function secondsText(s) {
    return s >= 600 && s % 60 === 0 ? (s / 60) + ' ' + t('unit_min') : s + ' ' + t('unit_s');
  }
  function duration(s) {
    s = Math.max(0, Math.floor(s));
    var d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
    if (d) return d + ' ' + t('unit_d') + ' ' + h + ' ' + t('unit_h');
    if (h) return h + ' ' + t('unit_h') + ' ' + m + ' ' + t('unit_min');
    return m + ' ' + t('unit_min') + ' ' + (s % 60) + ' s';
  }
  function labelText(label) { return label ? t('label_' + label) : t('label_none'); }
  function serverNow() { return Date.now() + S.offset; }
  function showMsg(text) {
    var m = $('msg');
    m.textContent = text;
    m.hidden = false;
    clearTimeout(showMsg.timer);
    showMsg.timer = setTimeout(function () { m.hidden = true; }, 6000);
  }

  // ------------------------------------------------------------------ state tile and modalities
  function level() {
    var sig = S.alarm && S.alarm.signal;
    if (sig && LEVELS[sig.visual]) return LEVELS[sig.visual];
    return S.alarm && S.alarm.active ? (S.alarm.priority || 'high') : 'calm';
  }
  function renderState() {
    var st = S.state, tile = $('tile');
    var lvl = st || (S.alarm && S.alarm.active) ? level() : 'none';
    tile.className = 'tile lvl-' + lvl;
    $('tile-level').textContent = lvl === 'none' ? '' : t('level_' + lvl);
    $('tile-label').textContent = st ? labelText(st.label) : t('waiting');
    $('tile-bar-label').textContent = t('distress_bar', { thr: num(S.thresholds.on, 2) });
    $('tile-distress').textContent = st ? num(st.distress, 2) : '–';
    $('tile-conf').textContent = st ? pct(st.confidence) : '–';
    $('tile-bar').style.width = st ? Math.round(Math.min(1, st.distress) * 100) + '%' : '0';
    $('tile-thr').style.left = Math.round(S.thresholds.on * 100) + '%';
    renderAge();
    renderModalities();
  }
  function renderAge() {
    if (!S.state) { $('tile-age').textContent = ''; return; }
    var age = S.ageAt + (Date.now() - S.stateAt) / 1000;
    var stale = age > 5;
    $('tile').classList.toggle('stale', stale);
    $('tile-age').textContent = stale ? t('stale', { s: Math.round(age) }) : '';
  }
  function barRow(cls, name, value, valueText, color) {
    var row = el('div', cls);
    row.appendChild(el('span', cls + '-name', name));
    var meter = el('div', 'meter'), fill = el('div', 'meter-fill');
    fill.style.width = Math.round(Math.max(0, Math.min(1, value)) * 100) + '%';
    fill.style.background = color || '#374151';
    meter.appendChild(fill);
    row.appendChild(meter);
    row.appendChild(el('span', cls + '-val', valueText));
    return row;
  }
  function renderModalities() {
    var mods = $('mods'), probs = $('probs');
    mods.textContent = '';
    probs.textContent = '';
    var st = S.state;
    ['face', 'voice'].forEach(function (m) {
      var d = st && st.modalities ? st.modalities[m] : null;
      var live = d && d.live;
      var source = m === 'face' ? 'camera' : 'microphone';
      var quiet = S.health[source] === 'ok' ? (m === 'face' ? t('no_face') : t('no_speech')) : t('no_signal');
      var text = live ? labelText(d.label) + ' ' + pct(d.confidence || 0) : quiet;
      var row = barRow('mod', t('mod_' + m), live ? (d.confidence || 0) : 0, text, live ? LABEL_COLORS[d.label] : null);
      if (!live) row.classList.add('off');
      mods.appendChild(row);
    });
    var names = S.labels.length ? S.labels : Object.keys(LABEL_COLORS).filter(function (k) { return k !== 'unknown'; });
    names.forEach(function (name) {
      var p = st && st.probs ? (st.probs[name] || 0) : 0;
      probs.appendChild(barRow('bar', labelText(name), p, pct(p), LABEL_COLORS[name]));
    });
    renderSounds(st && st.sounds);
  }
  // what the microphone hears: the current sound and each sound's share of the last minute
  var SOUND_COLORS = { speech: '#2563eb', scream: '#b91c1c', cry: '#c2410c', moan: '#a16207',
                       other: '#6b7280', quiet: '#9ca3af' };
  function renderSounds(snd) {
    var box = $('sounds');
    box.textContent = '';
    var now = snd && snd.now;
    $('sound-now').textContent = now ? '· ' + t('snd_' + now) : '';
    $('sound-now').className = 'sound-now' + (now === 'scream' || now === 'cry' || now === 'moan' ? ' sound-distress' : '');
    Object.keys(SOUND_COLORS).forEach(function (name) {
      var p = snd && snd.shares ? (snd.shares[name] || 0) : 0;
      box.appendChild(barRow('bar', t('snd_' + name), p, pct(p), SOUND_COLORS[name]));
    });
    var vd = snd && snd.vocal_distress;
    if (vd) {
      box.appendChild(el('div', 'muted small', t('vocal_distress_line', {
        scream: vd.scream_s || 0, distress: vd.distress_sound_s || 0, w: vd.window_s || 0 })));
    }
  }

  // ------------------------------------------------------------------ alarm banner
  function renderAlarm() {
    var a = S.alarm, box = $('alarm');
    renderPause();
    renderState();
    if (!a || !a.active) { box.hidden = true; return; }
    box.hidden = false;
    box.className = 'alarm prio-' + (a.priority || 'high') + (a.acknowledged ? ' acked' : '');
    $('alarm-prio').textContent = t('prio_' + (a.priority || 'high'));
    $('alarm-cond').textContent = a.condition ? t('cond_' + a.condition) : '';
    $('alarm-detail').textContent = a.since ? t('since', { t: dateTime(a.since) }) : '';
    // acknowledged: say so and when the sound comes back, instead of a second Acknowledge button
    $('ack').hidden = !!a.acknowledged;
    $('ack-state').hidden = !a.acknowledged;
    renderCountdowns();
    $('silence').textContent = t('silence', { m: Math.round(S.silenceLong / 60) });
    $('alarm-help').textContent = t('ack_help', { a: secondsText(S.silenceAck), m: Math.round(S.silenceLong / 60) });
  }
  function elapsed() { return (Date.now() - S.alarmAt) / 1000; }
  function renderCountdowns() {
    var a = S.alarm;
    if (a && a.active && a.acknowledged) {
      var left = (a.silenced_for_s || 0) - elapsed();
      $('ack-state').textContent = t('ack_state', { by: a.acknowledged_by || '?', t: mmss(left) });
    }
    var p = a && a.pause;
    if (p) $('pause-line').textContent = t('paused_line', { by: p.by || '?', t: mmss(p.remaining_s - elapsed()) });
  }
  function renderPause() {
    var p = S.alarm && S.alarm.pause;
    $('pause').className = 'pausebar' + (p ? ' on' : '');
    $('pause-off').hidden = !!p;
    $('pause-on').hidden = !p;
    var box = $('pause-buttons');
    if (box.childElementCount !== S.pauseMinutes.length) {
      box.textContent = '';
      S.pauseMinutes.forEach(function (m) {
        var b = el('button', 'btn-pause', t('pause_n', { m: m }));
        b.type = 'button';
        b.setAttribute('data-minutes', m);
        b.addEventListener('click', function () { pause(m); });
        box.appendChild(b);
      });
    }
  }
  function setAlarm(a) {
    S.alarm = a;
    S.alarmAt = Date.now();
  }
  function pause(minutes) {
    post('/api/pause', { minutes: minutes }).then(function (body) {
      setAlarm(body.alarm);
      renderAlarm();
      loadEvents();
    }).catch(function (e) { showMsg(t('pause_failed', { e: e.message })); });
  }
  function resume() {
    post('/api/resume', {}).then(function (body) {
      setAlarm(body.alarm);
      renderAlarm();
      loadEvents();
    }).catch(function (e) {
      if (e.body && e.body.alarm) { setAlarm(e.body.alarm); renderAlarm(); }
    });
  }
  function acknowledge(long) {
    var path = long ? '/api/silence' : '/api/acknowledge';
    $('ack').disabled = $('silence').disabled = true;
    post(path, {}).then(function (body) {
      setAlarm(body.alarm);
      renderAlarm();
      showMsg(t('kind_' + body.event.kind) + ' · ' + (body.event.by || ''));
      loadEvents();
    }).catch(function (e) {
      showMsg(e.status === 409 ? t('nothing_to_ack') : t('ack_failed', { e: e.message }));
      if (e.body && e.body.alarm) { setAlarm(e.body.alarm); renderAlarm(); }
    }).then(function () { $('ack').disabled = $('silence').disabled = false; });
  }

  // ------------------------------------------------------------------ timeline chart
  function addPoint(st, alarmActive) {
    if (!st) return;
    var now = serverNow(), a = alarmActive ? 1 : 0;
    var last = S.points[S.points.length - 1];
    if (last && now - last[0] < 1000 && last[3] === a) return;
    S.points.push([now, st.label, st.distress, a]);
    var cut = now - WINDOW_MS;
    while (S.points.length && S.points[0][0] < cut) S.points.shift();
    S.chartDirty = true;
  }
  function drawChart() {
    var c = $('chart');
    var dpr = window.devicePixelRatio || 1;
    var w = c.clientWidth, h = c.clientHeight;
    if (!w || !h) return;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
      c.width = Math.round(w * dpr); c.height = Math.round(h * dpr);
    }
    var g = c.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    var L = 34, R = 8, T = 8, B = 34, pw = w - L - R, ph = h - T - B;
    var now = serverNow(), t0 = now - WINDOW_MS;
    var x = function (ms) { return L + (ms - t0) / WINDOW_MS * pw; };
    var y = function (v) { return T + (1 - Math.max(0, Math.min(1, v))) * ph; };
    var pts = S.points.filter(function (p) { return p[0] >= t0; });
    var gap = 5000;
    // alarm periods
    g.fillStyle = 'rgba(185,28,28,0.22)';
    var runStart = null;
    for (var i = 0; i < pts.length; i++) {  // one rectangle per alarm period
      if (pts[i][3] && runStart === null) runStart = pts[i][0];
      var next = pts[i + 1];
      var ends = !next || !next[3] || next[0] - pts[i][0] > 15000;
      if (runStart !== null && ends) {
        var end = next && next[0] - pts[i][0] <= 15000 ? next[0] : pts[i][0] + 1000;
        g.fillRect(x(runStart), T, Math.max(2, x(end) - x(runStart)), ph);
        runStart = null;
      }
    }
    // grid and axes
    g.strokeStyle = '#e5e7eb'; g.lineWidth = 1; g.fillStyle = '#6b7280';
    g.font = '11px system-ui, sans-serif'; g.textAlign = 'right'; g.textBaseline = 'middle';
    [0, 0.5, 1].forEach(function (v) {
      g.beginPath(); g.moveTo(L, y(v)); g.lineTo(L + pw, y(v)); g.stroke();
      g.fillText(num(v, 1), L - 4, y(v));
    });
    g.textAlign = 'center'; g.textBaseline = 'top';
    var step = (pw < 500 ? 10 : 5) * 60 * 1000, first = Math.ceil(t0 / step) * step;
    for (var tm = first; tm <= now; tm += step) {
      g.beginPath(); g.moveTo(x(tm), T); g.lineTo(x(tm), T + ph); g.stroke();
      var label = timeOf(new Date(tm), false);
      if (x(tm) > L + 14 && x(tm) < L + pw - 14) g.fillText(label, x(tm), T + ph + 12);
    }
    // threshold
    g.strokeStyle = '#b45309'; g.setLineDash([5, 4]);
    g.beginPath(); g.moveTo(L, y(S.thresholds.on)); g.lineTo(L + pw, y(S.thresholds.on)); g.stroke();
    g.setLineDash([]);
    // label strip
    for (var j = 0; j < pts.length; j++) {
      var nx = j + 1 < pts.length && pts[j + 1][0] - pts[j][0] < gap ? pts[j + 1][0] : pts[j][0] + 1000;
      g.fillStyle = LABEL_COLORS[pts[j][1]] || '#d1d5db';
      g.fillRect(x(pts[j][0]), T + ph + 3, Math.max(1, x(nx) - x(pts[j][0])), 7);
    }
    // distress line
    g.strokeStyle = '#111827'; g.lineWidth = 2; g.beginPath();
    for (var k = 0; k < pts.length; k++) {
      var px = x(pts[k][0]), py = y(pts[k][2]);
      if (k === 0 || pts[k][0] - pts[k - 1][0] > gap) g.moveTo(px, py); else g.lineTo(px, py);
    }
    g.stroke();
    S.chartDirty = false;
  }
  function loadTimeline() {
    return api('/api/timeline?minutes=30').then(function (d) {
      S.offset = d.now_ms - Date.now();
      S.points = d.points;
      S.chartDirty = true;
    }).catch(function () {});
  }

  // ------------------------------------------------------------------ history and health
  function loadEvents() {
    return api('/api/events?limit=50').then(function (d) {
      var body = $('history').tBodies[0];
      body.textContent = '';
      var cell = function (tr, col, node) {   // data-label: the column name, shown when rows stack
        var td = el('td');
        td.setAttribute('data-label', t(col));
        if (typeof node === 'string') td.textContent = node; else td.appendChild(node);
        tr.appendChild(td);
      };
      d.events.forEach(function (ev) {
        var tr = el('tr');
        cell(tr, 'col_time', dateTime(ev.time));
        cell(tr, 'col_event', t('kind_' + ev.kind));
        cell(tr, 'col_condition', t('cond_' + ev.condition));
        cell(tr, 'col_priority', ev.priority === 'none' ? el('span', '', '—')
          : el('span', 'pill ' + ev.priority, t('prio_' + ev.priority)));
        cell(tr, 'col_by', ev.by || '—');
        body.appendChild(tr);
      });
      $('no-events').hidden = d.events.length > 0;
      $('store-warn').hidden = d.source !== 'memory';
    }).catch(function () {});
  }
  function kv(dl, key, value) {
    if (value === null || value === undefined || value === '') return;
    dl.appendChild(el('dt', '', key));
    dl.appendChild(el('dd', '', value));
  }
  function loadHealth() {
    return api('/api/health').then(function (d) {
      var chips = $('sources');
      chips.textContent = '';
      Object.keys(d.sources).forEach(function (name) {
        var s = d.sources[name];
        S.health[name] = s.status;
        // say why without hover (phones have none): the status, and what is wrong when not OK
        var why = t('status_' + s.status);
        if (name === 'gpio' && /^mock pins/.test(s.detail || '')) why = t('chip_gpio_mock');
        else if (s.status !== 'ok' && s.detail) why += ' (' + s.detail + ')';
        var sep = MT.lang === 'fr' ? ' : ' : ': ';
        var chip = el('span', 'chip st-' + s.status, t('src_' + name).replace('src_', '') + sep + why);
        chip.title = s.detail || '';
        chips.appendChild(chip);
      });
      var m = d.metrics || {}, sys = d.system || {};
      var dl = $('sys');
      dl.textContent = '';
      var fps = m.fps !== undefined ? m.fps : m.analysed_fps;
      kv(dl, t('fps'), fps !== undefined ? num(fps, 1) : null);
      var cpu = m.cpu_percent !== undefined ? m.cpu_percent : sys.cpu_percent;
      kv(dl, t('cpu'), cpu !== null && cpu !== undefined ? num(cpu, 0) + ' %' : null);
      var temp = m.cpu_temp_c !== undefined ? m.cpu_temp_c : sys.temperature_c;
      kv(dl, t('temperature'), temp !== null && temp !== undefined ? num(temp, 1) + ' °C' : null);
      kv(dl, t('memory'), sys.memory_used_percent !== null && sys.memory_used_percent !== undefined
        ? num(sys.memory_used_percent, 0) + ' %' : null);
      kv(dl, t('disk'), sys.disk_used_percent !== null && sys.disk_used_percent !== undefined
        ? (sys.disk_free_mb ? t('disk_value', { p: num(sys.disk_used_percent, 0) + ' %',
          g: num(sys.disk_free_mb / 1024, sys.disk_free_mb < 10240 ? 1 : 0) + ' ' + t('unit_gb') })
          : num(sys.disk_used_percent, 0) + ' %') : null);
      kv(dl, t('uptime'), duration(d.uptime_s));
      kv(dl, t('version'), d.version);
      var lat = $('lat');
      lat.textContent = '';
      Object.keys(m).sort().forEach(function (k) {
        var g = /^(.+?)_ms(?:_(p\d+|mean|max|min|avg))?$/.exec(k);
        if (!g || typeof m[k] !== 'number') return;
        var stage = g[1].split('_')[0];
        var name = MT.strings && MT.strings.en['mod_' + stage] ? t('mod_' + stage) : g[1].replace(/_/g, ' ');
        kv(lat, name + (g[1].indexOf('_') > 0 ? ' (' + g[1].split('_').slice(1).join(' ') + ')' : '') +
          (g[2] ? ' ' + g[2] : ''), num(m[k], 1) + ' ms');
      });
      var ul = $('models');
      ul.textContent = '';
      (d.models || []).forEach(function (mod) {
        var li = el('li', '', (mod.name || mod.file || '?') + (mod.version ? ' ' + mod.version : '') +
          (mod.backend ? ' · ' + mod.backend : '') + ' ');
        if (mod.sha256) li.appendChild(el('code', '', t('hash') + ' ' + String(mod.sha256).slice(0, 16)));
        ul.appendChild(li);
      });
    }).catch(function () {});
  }

  // ------------------------------------------------------------------ status and live stream
  function applyStatus(s) {
    S.status = s;
    S.thresholds = s.thresholds || S.thresholds;
    S.silenceLong = (s.silence_s && s.silence_s.long) || S.silenceLong;
    S.silenceAck = (s.silence_s && s.silence_s.ack) || S.silenceAck;
    S.pauseMinutes = s.pause_minutes || S.pauseMinutes;
    Object.keys(s.health || {}).forEach(function (k) { S.health[k] = s.health[k]; });
    S.labels = s.labels || S.labels;
    $('device').textContent = [s.device_id, s.location].filter(Boolean).join(' · ');
    $('authoff').hidden = s.auth !== false;
    $('logout').hidden = s.auth === false;
    onState(s);
  }
  function onState(d) {
    S.state = d.state;
    S.ageAt = d.age_s || 0;
    S.stateAt = Date.now();
    setAlarm(d.alarm);
    addPoint(d.state, d.alarm && d.alarm.active);
    renderAlarm();
  }
  function setConn(on) {
    var c = $('conn');
    c.className = 'conn ' + (on ? 'on' : 'off');
    c.setAttribute('data-i18n', on ? 'live' : 'reconnecting');
    c.textContent = t(on ? 'live' : 'reconnecting');
  }
  function connect() {
    var es = new EventSource('/api/stream');
    es.addEventListener('state', function (e) { S.retry = 1000; onState(JSON.parse(e.data)); });
    es.addEventListener('alarm', function (e) {
      var d = JSON.parse(e.data);
      setAlarm(d.alarm);
      renderAlarm();
      loadEvents();
    });
    es.onopen = function () { setConn(true); };
    es.onerror = function () {
      setConn(false);
      if (es.readyState === EventSource.CLOSED) {  // the browser gave up (e.g. 401): retry ourselves
        es.close();
        setTimeout(function () {
          api('/api/status').then(applyStatus).catch(function () {}).then(connect);
        }, S.retry);
        S.retry = Math.min(S.retry * 2, 30000);
      }
    };
  }

  document.addEventListener('DOMContentLoaded', function () {
    $('ack').addEventListener('click', function () { acknowledge(false); });
    $('silence').addEventListener('click', function () { acknowledge(true); });
    $('resume').addEventListener('click', resume);
    $('logout').addEventListener('click', function () {
      post('/logout', {}).catch(function () {}).then(function () { location.href = '/login'; });
    });
    MT.ready.then(function () {
      return Promise.all([api('/api/status').then(applyStatus), loadTimeline()]);
    }).catch(function () {}).then(function () {
      renderState();
      renderAlarm();
      drawChart();
      loadEvents();
      loadHealth();
      connect();
    });
    setInterval(renderAge, 1000);
    setInterval(renderCountdowns, 1000);
    setInterval(drawChart, 1000);
    setInterval(loadHealth, 10000);
    setInterval(loadTimeline, 5 * 60000);
    window.addEventListener('resize', drawChart);
  });
})();
