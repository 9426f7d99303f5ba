/**
 * @OnlyCurrentDoc
 *
 * sheetsync trigger: reports a person's edits of this spreadsheet to the sheetsync daemon.
 *
 * Installable onEdit + onChange triggers build a JSON payload (version 1, see
 * docs/webhook-payload.md in the sheetsync repository) for every edit and, by the Script
 * Property SHEETSYNC_MODE:
 *
 *   journal (the default): append it to the hidden tab _sheetsync_journal of this spreadsheet,
 *     which the daemon polls (docs/journal.md). Nothing public is needed.
 *   webhook: POST it, signed, to the daemon's public HTTPS webhook:
 *       POST <SHEETSYNC_URL>
 *       Content-Type: application/json
 *       X-Sheetsync-Timestamp: <unix seconds>
 *       X-Sheetsync-Signature: v1=<lowercase hex HMAC-SHA256(secret, "<timestamp>.<body>")>
 *
 * Install (details in README.md): paste this file into Extensions > Apps Script of the
 * spreadsheet; for webhook mode set the Script Properties SHEETSYNC_URL and SHEETSYNC_SECRET
 * (Project Settings, or run setupInteractive(), or call setup(url, secret) once); then run
 * install() and authorize. The secret is read from Script Properties and never written in this
 * file.
 *
 * The handlers are deliberately NOT named onEdit/onChange: a function named onEdit would also
 * run as a *simple* trigger, which cannot call UrlFetchApp and would fail on every edit.
 */

var SHEETSYNC_PAYLOAD_VERSION = 1;
/** Script Property names. */
var SHEETSYNC_PROP_MODE = 'SHEETSYNC_MODE';
var SHEETSYNC_PROP_URL = 'SHEETSYNC_URL';
var SHEETSYNC_PROP_SECRET = 'SHEETSYNC_SECRET';
var SHEETSYNC_PROP_MAX_ROWS = 'SHEETSYNC_MAX_ROWS';
var SHEETSYNC_PROP_JOURNAL_MAX_ROWS = 'SHEETSYNC_JOURNAL_MAX_ROWS';
/** An EDIT of more rows than this is reported as OTHER (the daemon re-reads the sheet). */
var SHEETSYNC_DEFAULT_MAX_ROWS = 2000;
/** A webhook body larger than this is sent as OTHER (the receiver's default limit is 1 MiB). */
var SHEETSYNC_MAX_BODY_BYTES = 900 * 1024;
/** Attempts per delivery: the first plus retries on 409, 429, 5xx and network errors. */
var SHEETSYNC_ATTEMPTS = 3;
/** The Sheets serial epoch 1899-12-30 in unix milliseconds, and a day in milliseconds. */
var SHEETSYNC_EPOCH_MS = Date.UTC(1899, 11, 30);
var SHEETSYNC_DAY_MS = 86400000;
/** The journal tab, and the prefix of sheetsync's scratch tabs (neither is ever reported). */
var SHEETSYNC_JOURNAL = '_sheetsync_journal';
var SHEETSYNC_SCRATCH_PREFIX = 'sheetsync-scratch-';
/** The journal's columns: A = seq, B = entry; row 1 also holds C1 = journal id, D1 = next seq. */
var SHEETSYNC_JOURNAL_COLUMNS = 4;
/** Most characters (String.length) of one journal entry; a cell holds at most 50,000. */
var SHEETSYNC_MAX_ENTRY_CHARS = 45000;
/** A journal holding this many entries takes no more: the daemon is not reading it. */
var SHEETSYNC_DEFAULT_JOURNAL_MAX_ROWS = 20000;
/** How long an append waits for the document lock. */
var SHEETSYNC_LOCK_WAIT_MS = 10000;
/** The payload's keys in contract order. */
var SHEETSYNC_KEYS = ['version', 'spreadsheetId', 'sheetId', 'sheetName', 'changeType',
  'eventId', 'timestamp', 'user', 'range', 'header', 'rows'];

/**
 * Webhook mode: stores the webhook URL and the shared secret in Script Properties.
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
    SHEETSYNC_MODE: 'webhook',
    SHEETSYNC_URL: url,
    SHEETSYNC_SECRET: secret
  });
}

/** Journal mode (the default; undoes setup()): edits go to the hidden journal tab. */
function setupJournal() {
  PropertiesService.getScriptProperties().setProperty(SHEETSYNC_PROP_MODE, 'journal');
}

/** Asks for the webhook URL and secret in the open spreadsheet and stores them (see setup). */
function setupInteractive() {
  var ui = SpreadsheetApp.getUi();
  var url = ui.prompt('sheetsync', 'Webhook URL of the sheetsync daemon:', ui.ButtonSet.OK_CANCEL);
  if (url.getSelectedButton() !== ui.Button.OK) return;
  var secret = ui.prompt('sheetsync', 'Webhook secret:', ui.ButtonSet.OK_CANCEL);
  if (secret.getSelectedButton() !== ui.Button.OK) return;
  setup(url.getResponseText().trim(), secret.getResponseText().trim());
  ui.alert('sheetsync: settings saved. Now run install().');
}

/** The mode in the Script Properties: 'journal' (also when unset) or 'webhook'. */
function sheetsyncMode_() {
  var mode = PropertiesService.getScriptProperties().getProperty(SHEETSYNC_PROP_MODE);
  if (!mode) return 'journal';
  if (mode !== 'journal' && mode !== 'webhook') {
    throw new Error('sheetsync: Script Property ' + SHEETSYNC_PROP_MODE +
      ' must be journal or webhook, got ' + mode);
  }
  return mode;
}

/**
 * Creates the installable triggers for this spreadsheet (replacing earlier sheetsync
 * triggers of this project, so running it twice does not double reports). Journal mode needs
 * no settings and creates the journal tab; webhook mode needs setup(url, secret) first.
 */
function install() {
  var mode = sheetsyncMode_();
  var props = PropertiesService.getScriptProperties();
  if (mode === 'webhook' &&
    (!props.getProperty(SHEETSYNC_PROP_URL) || !props.getProperty(SHEETSYNC_PROP_SECRET))) {
    throw new Error('sheetsync install: run setup(url, secret) first (Script Properties ' +
      SHEETSYNC_PROP_URL + ' and ' + SHEETSYNC_PROP_SECRET + ' are not set)');
  }
  var ss = SpreadsheetApp.getActive();
  if (mode === 'journal' && !sheetsyncWithLock_(function () { sheetsyncJournalSheet_(ss); })) {
    throw new Error('sheetsync install: the document lock was busy for ' +
      SHEETSYNC_LOCK_WAIT_MS / 1000 + ' s; run install() again');
  }
  uninstall();
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
  var sheet = e.range.getSheet();
  // sheetsync's own tabs are the script's and the daemon's business, not edits to sync.
  if (sheetsyncOwnTab_(sheet.getName())) return;
  var ss = e.source || sheet.getParent();
  sheetsyncReport_(ss, [sheetsyncEditBody_(ss, sheet, e.range, sheetsyncUser_(e))]);
}

/** The body of an EDIT of `range`, or an OTHER one when it spans over SHEETSYNC_MAX_ROWS rows. */
function sheetsyncEditBody_(ss, sheet, range, user) {
  var tz = ss.getSpreadsheetTimeZone();
  var startRow = range.getRow();
  var endRow = range.getLastRow();
  var header = sheetsyncHeader_(sheet, tz);
  var maxRows = Number(PropertiesService.getScriptProperties()
    .getProperty(SHEETSYNC_PROP_MAX_ROWS)) || SHEETSYNC_DEFAULT_MAX_ROWS;
  var count = endRow - startRow + 1;
  var ev = {changeType: 'EDIT', user: user, timestamp: new Date().getTime()};
  if (count > maxRows) {
    ev.changeType = 'OTHER';
    return sheetsyncBody_(ss, sheet, ev, null, header, []);
  }
  var width = Math.max(header.length, range.getLastColumn());
  var grid = sheet.getRange(startRow, 1, count, width).getValues();
  var rows = [];
  for (var i = 0; i < count; i++) {
    rows.push({row: startRow + i, values: sheetsyncRow_(grid[i], tz)});
  }
  var editRange = {
    startRow: startRow,
    endRow: endRow,
    startColumn: range.getColumn(),
    endColumn: range.getLastColumn()
  };
  return sheetsyncBody_(ss, sheet, ev, editRange, header, rows);
}

/**
 * Installable onChange handler: INSERT_ROW, REMOVE_ROW or OTHER, without rows. The event does
 * not say which tab changed (the active sheet of a trigger need not be it), so there is one
 * payload for every tab but sheetsync's own, each with its own event id.
 */
function sheetsyncOnChange(e) {
  var type = e.changeType;
  // EDIT is reported by sheetsyncOnEdit with the rows; FORMAT changes no value.
  if (type === 'EDIT' || type === 'FORMAT') return;
  var changeType = (type === 'INSERT_ROW' || type === 'REMOVE_ROW') ? type : 'OTHER';
  var ss = e.source || SpreadsheetApp.getActive();
  var tz = ss.getSpreadsheetTimeZone();
  var ev = {changeType: changeType, user: sheetsyncUser_(e), timestamp: new Date().getTime()};
  var bodies = [];
  var sheets = ss.getSheets();
  for (var i = 0; i < sheets.length; i++) {
    if (sheetsyncOwnTab_(sheets[i].getName())) continue;
    bodies.push(sheetsyncBody_(ss, sheets[i], ev, null, sheetsyncHeader_(sheets[i], tz), []));
  }
  sheetsyncReport_(ss, bodies);
}

/** Whether a tab is sheetsync's own: the journal or a scratch tab. */
function sheetsyncOwnTab_(name) {
  return name === SHEETSYNC_JOURNAL || name.indexOf(SHEETSYNC_SCRATCH_PREFIX) === 0;
}

/** Journals or sends the bodies of one event, by SHEETSYNC_MODE. */
function sheetsyncReport_(ss, bodies) {
  var mode;
  try {
    mode = sheetsyncMode_();
  } catch (err) {
    console.error(String(err.message || err) + '; edit not reported');
    return;
  }
  if (mode === 'journal') {
    sheetsyncJournal_(ss, sheetsyncEntries_(bodies));
    return;
  }
  for (var i = 0; i < bodies.length; i++) sheetsyncSend_(sheetsyncWebhookPayload_(bodies[i]));
}

/**
 * Builds a body. Key order is part of the contract, so the object is built in that order
 * and serialised by JSON.stringify (compact, no whitespace). `ev` is {changeType, user,
 * timestamp}; `range` is null except for EDIT.
 */
function sheetsyncBody_(ss, sheet, ev, range, header, rows) {
  var body = {
    version: SHEETSYNC_PAYLOAD_VERSION,
    spreadsheetId: ss.getId(),
    sheetId: sheet.getSheetId(),
    sheetName: sheet.getName(),
    changeType: ev.changeType,
    eventId: Utilities.getUuid(),
    timestamp: ev.timestamp,
    user: ev.user
  };
  if (range) body.range = range;
  body.header = header;
  body.rows = rows;
  return body;
}

/** A copy of `body` in contract order with the fields of `changes` replaced (null drops one). */
function sheetsyncCopy_(body, changes) {
  var out = {};
  for (var i = 0; i < SHEETSYNC_KEYS.length; i++) {
    var k = SHEETSYNC_KEYS[i];
    var v = Object.prototype.hasOwnProperty.call(changes, k) ? changes[k] : body[k];
    if (v !== null && v !== undefined) out[k] = v;
  }
  return out;
}

/** The same event as OTHER, without range or rows: the daemon re-reads the sheet. */
function sheetsyncOther_(body) {
  return sheetsyncCopy_(body, {changeType: 'OTHER', range: null, rows: []});
}

/** A webhook request's body text and timestamp (an OTHER body when it would be too large). */
function sheetsyncWebhookPayload_(body) {
  var text = JSON.stringify(body);
  if (sheetsyncUtf8Length_(text) > SHEETSYNC_MAX_BODY_BYTES) {
    text = JSON.stringify(sheetsyncOther_(body));
  }
  return {timestampSecs: Math.floor(body.timestamp / 1000), body: text};
}

/**
 * The journal entries of one event: an EDIT split into entries of consecutive rows of at most
 * SHEETSYNC_MAX_ENTRY_CHARS characters (one OTHER entry when a single row is too large), any
 * other body as it is. An entry over the limit even so (a header that long) is left out.
 */
function sheetsyncEntries_(bodies) {
  var out = [];
  for (var i = 0; i < bodies.length; i++) {
    var b = bodies[i];
    var entries = [JSON.stringify(b)];
    if (b.changeType === 'EDIT') entries = sheetsyncSplit_(b) || [JSON.stringify(sheetsyncOther_(b))];
    for (var k = 0; k < entries.length; k++) {
      if (entries[k].length <= SHEETSYNC_MAX_ENTRY_CHARS) {
        out.push(entries[k]);
      } else {
        console.error('sheetsync: a ' + b.changeType + ' entry of ' + b.sheetName + ' has ' +
          entries[k].length + ' characters (header too long); not journaled');
      }
    }
  }
  return out;
}

/** Greedy split: each entry takes as many of the remaining rows as fit; null if one row alone does not. */
function sheetsyncSplit_(body) {
  var rows = body.rows;
  var lens = rows.map(function (r) { return JSON.stringify(r).length; });
  // Length of the entry of rows i..j: its shell, the rows and the commas between them.
  var fits = function (i, j, rowsLen) {
    return JSON.stringify(sheetsyncPart_(body, i, j, false)).length + rowsLen + (j - i) <=
      SHEETSYNC_MAX_ENTRY_CHARS;
  };
  var out = [];
  var i = 0;
  while (i < rows.length) {
    var sum = lens[i];
    if (!fits(i, i, sum)) return null;
    var j = i;
    while (j + 1 < rows.length && fits(i, j + 1, sum + lens[j + 1])) {
      j++;
      sum += lens[j];
    }
    out.push(JSON.stringify(sheetsyncPart_(body, i, j, true)));
    i = j + 1;
  }
  return out;
}

/** The entry of rows i..j of an EDIT body (withRows false: with `rows` empty). */
function sheetsyncPart_(body, i, j, withRows) {
  var r = body.range;
  var range = {
    startRow: body.rows[i].row,
    endRow: body.rows[j].row,
    startColumn: r.startColumn,
    endColumn: r.endColumn
  };
  return sheetsyncCopy_(body, {range: range, rows: withRows ? body.rows.slice(i, j + 1) : []});
}

/**
 * Runs fn under the document lock (waited for up to 10 s); false when it could not be had.
 * Pending writes are flushed before the lock is released, so the next holder reads them.
 */
function sheetsyncWithLock_(fn) {
  var lock = LockService.getDocumentLock();
  if (!lock.tryLock(SHEETSYNC_LOCK_WAIT_MS)) return false;
  try {
    fn();
    SpreadsheetApp.flush();
  } finally {
    lock.releaseLock();
  }
  return true;
}

/** Appends one event's entries to the journal under the document lock (docs/journal.md). */
function sheetsyncJournal_(ss, entries) {
  if (entries.length === 0) return;
  var done = sheetsyncWithLock_(function () { sheetsyncAppend_(ss, entries); });
  if (!done) {
    // The daemon sees the Drive version move with no entry to explain it and reads the Sheet.
    console.error('sheetsync: the document lock was busy for ' + SHEETSYNC_LOCK_WAIT_MS / 1000 +
      ' s; ' + entries.length + ' journal entries not written');
  }
}

/**
 * Writes the entries below the journal's last row with seqs D1, D1 + 1, ... in one setValues,
 * then moves D1 past them; writes nothing when the journal is full. Call under the lock.
 */
function sheetsyncAppend_(ss, entries) {
  var sheet = sheetsyncJournalSheet_(ss);
  var last = Math.max(sheet.getLastRow(), 1);
  var cap = Number(PropertiesService.getScriptProperties()
    .getProperty(SHEETSYNC_PROP_JOURNAL_MAX_ROWS)) || SHEETSYNC_DEFAULT_JOURNAL_MAX_ROWS;
  if (last - 1 >= cap) {
    console.error('sheetsync: the journal holds ' + (last - 1) + ' entries (' +
      SHEETSYNC_PROP_JOURNAL_MAX_ROWS + ' = ' + cap + '): is the daemon reading it? ' +
      entries.length + ' entries not written');
    return;
  }
  var next = sheetsyncNextSeq_(sheet);
  var missing = last + entries.length - sheet.getMaxRows();
  if (missing > 0) sheet.insertRowsAfter(sheet.getMaxRows(), missing);
  var values = [];
  for (var k = 0; k < entries.length; k++) values.push([next + k, entries[k]]);
  sheet.getRange(last + 1, 1, values.length, 2).setValues(values);
  sheet.getRange(1, 4).setValue(next + values.length);
}

/**
 * D1 when it holds a whole number of at least 1, else 1 (a person broke the counter; the
 * daemon sees the seqs go back and reads the Sheet).
 */
function sheetsyncNextSeq_(sheet) {
  var next = sheet.getRange(1, 4).getValue();
  return (typeof next === 'number' && next >= 1 && next % 1 === 0) ? next : 1;
}

/**
 * The journal tab; when missing, a new one at the end: four columns, header row
 * seq | entry | <journal id> | 1, hidden, protected with a warning. Call under the lock.
 */
function sheetsyncJournalSheet_(ss) {
  var sheet = ss.getSheetByName(SHEETSYNC_JOURNAL);
  if (sheet) return sheet;
  sheet = ss.insertSheet(SHEETSYNC_JOURNAL, ss.getSheets().length);
  if (sheet.getMaxColumns() > SHEETSYNC_JOURNAL_COLUMNS) {
    // Fewer cells against the spreadsheet's 10 million.
    sheet.deleteColumns(SHEETSYNC_JOURNAL_COLUMNS + 1,
      sheet.getMaxColumns() - SHEETSYNC_JOURNAL_COLUMNS);
  }
  sheet.getRange(1, 1, 1, SHEETSYNC_JOURNAL_COLUMNS)
    .setValues([['seq', 'entry', Utilities.getUuid(), 1]]);
  sheet.hideSheet();
  sheet.protect()
    .setDescription('sheetsync journal: written by the sheetsync script, read and trimmed by ' +
      'the sheetsync daemon. Do not edit.')
    .setWarningOnly(true);
  return sheet;
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
