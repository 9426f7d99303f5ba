/**
 * @OnlyCurrentDoc
 *
 * sheetsync trigger: reports a person's edits of this spreadsheet to the sheetsync daemon.
 *
 * Installable onEdit + onChange triggers POST a signed JSON payload (version 1, see
 * docs/webhook-payload.md in the sheetsync repository) to the daemon's webhook:
 *
 *   POST <SHEETSYNC_URL>
 *   Content-Type: application/json
 *   X-Sheetsync-Timestamp: <unix seconds>
 *   X-Sheetsync-Signature: v1=<lowercase hex HMAC-SHA256(secret, "<timestamp>.<body>")>
 *
 * Install (details in README.md): paste this file into Extensions > Apps Script of the
 * spreadsheet, set the Script Properties SHEETSYNC_URL and SHEETSYNC_SECRET (Project Settings,
 * or run setupInteractive(), or call setup(url, secret) once), then run install() and
 * authorize. The secret is read from Script Properties and never written in this file.
 *
 * The handlers are deliberately NOT named onEdit/onChange: a function named onEdit would also
 * run as a *simple* trigger, which cannot call UrlFetchApp and would fail on every edit.
 */

var SHEETSYNC_PAYLOAD_VERSION = 1;
/** Script Property names. */
var SHEETSYNC_PROP_URL = 'SHEETSYNC_URL';
var SHEETSYNC_PROP_SECRET = 'SHEETSYNC_SECRET';
var SHEETSYNC_PROP_MAX_ROWS = 'SHEETSYNC_MAX_ROWS';
/** An EDIT of more rows than this is reported as OTHER (the daemon re-reads the sheet). */
var SHEETSYNC_DEFAULT_MAX_ROWS = 2000;
/** A body larger than this is reported as OTHER (the receiver's default limit is 1 MiB). */
var SHEETSYNC_MAX_BODY_BYTES = 900 * 1024;
/** Attempts per delivery: the first plus retries on 409, 429, 5xx and network errors. */
var SHEETSYNC_ATTEMPTS = 3;
/** The Sheets serial epoch 1899-12-30 in unix milliseconds, and a day in milliseconds. */
var SHEETSYNC_EPOCH_MS = Date.UTC(1899, 11, 30);
var SHEETSYNC_DAY_MS = 86400000;

/**
 * Stores the webhook URL and the shared secret in Script Properties.
 * @param {string} url the daemon's webhook URL (https:// in production)
 * @param {string} secret the shared HMAC secret (the daemon's webhook secret)
 */
function setup(url, secret) {
  if (typeof url !== 'string' || !/^https?:\/\/\S+$/.test(url)) {
    throw new Error('sheetsync setup: url must be an http(s) URL, got ' + url);
  }
  if (typeof secret !== 'string' || secret.length === 0) {
    throw new Error('sheetsync setup: secret must be a non-empty string');
  }
  PropertiesService.getScriptProperties().setProperties({
    SHEETSYNC_URL: url,
    SHEETSYNC_SECRET: secret
  });
}

/** Asks for the URL and secret in the open spreadsheet and stores them (see setup). */
function setupInteractive() {
  var ui = SpreadsheetApp.getUi();
  var url = ui.prompt('sheetsync', 'Webhook URL of the sheetsync daemon:', ui.ButtonSet.OK_CANCEL);
  if (url.getSelectedButton() !== ui.Button.OK) return;
  var secret = ui.prompt('sheetsync', 'Webhook secret:', ui.ButtonSet.OK_CANCEL);
  if (secret.getSelectedButton() !== ui.Button.OK) return;
  setup(url.getResponseText().trim(), secret.getResponseText().trim());
  ui.alert('sheetsync: settings saved. Now run install().');
}

/**
 * Creates the installable triggers for this spreadsheet (replacing earlier sheetsync
 * triggers of this project, so running it twice does not double deliveries).
 */
function install() {
  var props = PropertiesService.getScriptProperties();
  if (!props.getProperty(SHEETSYNC_PROP_URL) || !props.getProperty(SHEETSYNC_PROP_SECRET)) {
    throw new Error('sheetsync install: run setup(url, secret) first (Script Properties ' +
      SHEETSYNC_PROP_URL + ' and ' + SHEETSYNC_PROP_SECRET + ' are not set)');
  }
  uninstall();
  var ss = SpreadsheetApp.getActive();
  ScriptApp.newTrigger('sheetsyncOnEdit').forSpreadsheet(ss).onEdit().create();
  ScriptApp.newTrigger('sheetsyncOnChange').forSpreadsheet(ss).onChange().create();
}

/** Deletes this project's sheetsync triggers. */
function uninstall() {
  var triggers = ScriptApp.getProjectTriggers();
  for (var i = 0; i < triggers.length; i++) {
    var fn = triggers[i].getHandlerFunction();
    if (fn === 'sheetsyncOnEdit' || fn === 'sheetsyncOnChange') {
      ScriptApp.deleteTrigger(triggers[i]);
    }
  }
}

/** Installable onEdit handler: an EDIT payload with the edited rows. */
function sheetsyncOnEdit(e) {
  var range = e.range;
  var sheet = range.getSheet();
  var ss = e.source || sheet.getParent();
  var tz = ss.getSpreadsheetTimeZone();
  var startRow = range.getRow();
  var endRow = range.getLastRow();
  var startColumn = range.getColumn();
  var endColumn = range.getLastColumn();
  var header = sheetsyncHeader_(sheet, tz);
  var maxRows = Number(PropertiesService.getScriptProperties()
    .getProperty(SHEETSYNC_PROP_MAX_ROWS)) || SHEETSYNC_DEFAULT_MAX_ROWS;
  var count = endRow - startRow + 1;
  if (count > maxRows) {
    sheetsyncSend_(sheetsyncPayload_(ss, sheet, 'OTHER', sheetsyncUser_(e), null, header, []));
    return;
  }
  var width = Math.max(header.length, endColumn);
  var grid = sheet.getRange(startRow, 1, count, width).getValues();
  var rows = [];
  for (var i = 0; i < count; i++) {
    rows.push({row: startRow + i, values: sheetsyncRow_(grid[i], tz)});
  }
  var editRange = {
    startRow: startRow,
    endRow: endRow,
    startColumn: startColumn,
    endColumn: endColumn
  };
  var payload = sheetsyncPayload_(ss, sheet, 'EDIT', sheetsyncUser_(e), editRange, header, rows);
  if (sheetsyncUtf8Length_(payload.body) > SHEETSYNC_MAX_BODY_BYTES) {
    // Too large for one request: tell the daemon to re-read the sheet instead.
    payload = sheetsyncPayload_(ss, sheet, 'OTHER', sheetsyncUser_(e), null, header, []);
  }
  sheetsyncSend_(payload);
}

/** Installable onChange handler: INSERT_ROW, REMOVE_ROW or OTHER, without rows. */
function sheetsyncOnChange(e) {
  var type = e.changeType;
  // EDIT is reported by sheetsyncOnEdit with the rows; FORMAT changes no value.
  if (type === 'EDIT' || type === 'FORMAT') return;
  var changeType = (type === 'INSERT_ROW' || type === 'REMOVE_ROW') ? type : 'OTHER';
  var ss = e.source || SpreadsheetApp.getActive();
  var sheet = ss.getActiveSheet();
  var header = sheetsyncHeader_(sheet, ss.getSpreadsheetTimeZone());
  sheetsyncSend_(sheetsyncPayload_(ss, sheet, changeType, sheetsyncUser_(e), null, header, []));
}

/**
 * Builds the body. Key order is part of the contract, so the object is built in that order
 * and serialised by JSON.stringify (compact, no whitespace).
 */
function sheetsyncPayload_(ss, sheet, changeType, user, range, header, rows) {
  var now = new Date().getTime();
  var body = {
    version: SHEETSYNC_PAYLOAD_VERSION,
    spreadsheetId: ss.getId(),
    sheetId: sheet.getSheetId(),
    sheetName: sheet.getName(),
    changeType: changeType,
    eventId: Utilities.getUuid(),
    timestamp: now,
    user: user
  };
  if (range) body.range = range;
  body.header = header;
  body.rows = rows;
  return {timestampSecs: Math.floor(now / 1000), body: JSON.stringify(body)};
}

/** Row 1 from column 1 to its last non-empty cell. */
function sheetsyncHeader_(sheet, tz) {
  var last = sheet.getLastColumn();
  if (last < 1) return [];
  var values = sheetsyncRow_(sheet.getRange(1, 1, 1, last).getValues()[0], tz);
  var len = values.length;
  while (len > 0 && values[len - 1] === '') len--;
  return values.slice(0, len);
}

/** Converts a row of getValues() to the payload rendering. */
function sheetsyncRow_(row, tz) {
  var out = [];
  for (var i = 0; i < row.length; i++) out.push(sheetsyncCell_(row[i], tz));
  return out;
}

/**
 * One cell as the values API renders it with UNFORMATTED_VALUE and SERIAL_NUMBER: numbers,
 * booleans and strings (errors arrive as their text, empty cells as "") as they are; Date
 * objects become serial numbers of their wall-clock time in the spreadsheet's time zone.
 */
function sheetsyncCell_(v, tz) {
  if (v === null || v === undefined) return '';
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'string') return v;
  if (Object.prototype.toString.call(v) === '[object Date]') return sheetsyncSerial_(v, tz);
  return String(v);
}

/** Days since 1899-12-30 of the date's wall-clock time in `tz` (fraction = time of day). */
function sheetsyncSerial_(date, tz) {
  var s = Utilities.formatDate(date, tz, "yyyy-MM-dd'T'HH:mm:ss.SSS");
  var m = /^(-?\d+)-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d\d\d)$/.exec(s);
  if (!m) throw new Error('sheetsync: cannot read date ' + s);
  var days = (Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])) - SHEETSYNC_EPOCH_MS) /
    SHEETSYNC_DAY_MS;
  var ms = ((Number(m[4]) * 60 + Number(m[5])) * 60 + Number(m[6])) * 1000 + Number(m[7]);
  return ms === 0 ? days : days + ms / SHEETSYNC_DAY_MS;
}

function sheetsyncUser_(e) {
  try {
    var email = e.user ? e.user.getEmail() : '';
    return typeof email === 'string' ? email : '';
  } catch (err) {
    return '';
  }
}

function sheetsyncUtf8Length_(s) {
  return Utilities.newBlob(s).getBytes().length;
}

/** Lowercase hex of a signed byte array (Apps Script bytes are -128..127). */
function sheetsyncHex_(bytes) {
  var out = '';
  for (var i = 0; i < bytes.length; i++) {
    out += ((bytes[i] & 0xff) + 0x100).toString(16).slice(1);
  }
  return out;
}

/** Signs and POSTs a payload; retries on 409, 429, 5xx and network errors. */
function sheetsyncSend_(payload) {
  var props = PropertiesService.getScriptProperties();
  var url = props.getProperty(SHEETSYNC_PROP_URL);
  var secret = props.getProperty(SHEETSYNC_PROP_SECRET);
  if (!url || !secret) {
    console.error('sheetsync: not set up (Script Properties ' + SHEETSYNC_PROP_URL + ' and ' +
      SHEETSYNC_PROP_SECRET + '); run setup(url, secret)');
    return;
  }
  var ts = String(payload.timestampSecs);
  var mac = Utilities.computeHmacSha256Signature(ts + '.' + payload.body, secret,
    Utilities.Charset.UTF_8);
  var options = {
    method: 'post',
    contentType: 'application/json',
    headers: {
      'X-Sheetsync-Timestamp': ts,
      'X-Sheetsync-Signature': 'v1=' + sheetsyncHex_(mac)
    },
    payload: payload.body,
    muteHttpExceptions: true
  };
  for (var attempt = 1; attempt <= SHEETSYNC_ATTEMPTS; attempt++) {
    var code = 0;
    var text = '';
    try {
      var res = UrlFetchApp.fetch(url, options);
      code = res.getResponseCode();
      text = res.getContentText();
    } catch (err) {
      text = String(err);
    }
    if (code >= 200 && code < 300) return;
    var retry = code === 0 || code === 409 || code === 429 || code >= 500;
    if (!retry || attempt === SHEETSYNC_ATTEMPTS) {
      // The daemon's periodic full read still picks the edit up.
      console.error('sheetsync: delivery failed (HTTP ' + code + '): ' + text);
      return;
    }
    Utilities.sleep(1000 * attempt);
  }
}
