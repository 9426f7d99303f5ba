#!/usr/bin/env node
// Runs apps-script/sheetsync.gs under Node with a small stand-in for the Apps Script services
// it calls (SpreadsheetApp/Sheet/Range backed by a grid, LockService, PropertiesService,
// ScriptApp, Utilities, UrlFetchApp), as tests/apps_script.rs drives it.
//
// Usage: node harness.js <scenario.json | - (stdin)>
//
// Scenario:
//   { "script": "/path/to/sheetsync.gs",
//     "spreadsheetId": "...", "timeZone": "America/New_York", "activeSheet": 0,
//     "sheets": [{"sheetId": 0, "name": "Sheet1", "rows": [[cell, ...], ...],
//                 "maxRows": 1000, "maxColumns": 26, "hidden": false}],   // the last three optional
//     "lockBusy": false,                     // LockService's tryLock fails (another execution)
//     "properties": {"SHEETSYNC_URL": "...", ...},
//     "deliver": true,                       // really POST (else answer "respond" or 200)
//     "respond": [200],                      // canned status codes when deliver is false
//     "calls": [{"fn": "sheetsyncOnEdit", "event": {"sheet": 0, "user": "a@b",
//                 "range": {"row": 2, "column": 1, "numRows": 2, "numColumns": 3}}},
//               {"fn": "sheetsyncOnChange", "event": {"changeType": "INSERT_ROW", "user": ""}},
//               {"fn": "setup", "args": ["https://...", "secret"]}, {"fn": "install"}] }
//   A cell is what Range.getValues() returns: a number, string or boolean ("" = empty), or
//   {"date": <serial>} for a date/time-formatted cell, which getValues() returns as a Date
//   whose wall-clock time in the spreadsheet's time zone is that serial (as Google does).
//   Ranges outside a sheet's maxRows x maxColumns throw, a cell over 50,000 characters
//   throws, and any write to the _sheetsync_journal tab without the document lock throws.
//
// Prints one JSON object: {"requests": [...], "sleeps": [...], "logs": [...],
//   "properties": {...}, "triggers": [...], "errors": [...], "locks": [...],
//   "sheets": [{"sheetId", "name", "rows", "maxRows", "maxColumns", "hidden", "protections"}]}.
'use strict';

const fs = require('node:fs');
const vm = require('node:vm');
const crypto = require('node:crypto');
const { execFileSync } = require('node:child_process');

const DAY_MS = 86400000;
const EPOCH_MS = Date.UTC(1899, 11, 30);

const scenarioPath = process.argv[2] && process.argv[2] !== '-' ? process.argv[2] : 0;
const scenario = JSON.parse(fs.readFileSync(scenarioPath, 'utf8'));
const out = { requests: [], sleeps: [], logs: [], triggers: [], errors: [], locks: [] };
const JOURNAL = '_sheetsync_journal';
const MAX_CELL_CHARS = 50000;
let lockHeld = false;

// ---- time zones ---------------------------------------------------------------------------

function wallParts(ms, tz) {
  const fmt = new Intl.DateTimeFormat('en-US', {
    timeZone: tz, hourCycle: 'h23', era: 'short',
    year: 'numeric', month: '2-digit', day: '2-digit',
    hour: '2-digit', minute: '2-digit', second: '2-digit',
  });
  const p = {};
  for (const part of fmt.formatToParts(new Date(ms))) p[part.type] = part.value;
  let year = Number(p.year);
  if (p.era === 'BC' || p.era === 'B') year = 1 - year;
  return {
    year, month: Number(p.month), day: Number(p.day),
    hour: Number(p.hour), minute: Number(p.minute), second: Number(p.second),
    ms: ((ms % 1000) + 1000) % 1000,
  };
}

/** The wall-clock time of instant `ms` in `tz`, as UTC milliseconds. */
function wallMs(ms, tz) {
  const w = wallParts(ms, tz);
  const d = new Date(0);
  d.setUTCFullYear(w.year, w.month - 1, w.day);
  d.setUTCHours(w.hour, w.minute, w.second, w.ms);
  return d.getTime();
}

/** The instant whose wall-clock time in `tz` is `wall` (UTC milliseconds). */
function instantOfWall(wall, tz) {
  let t = wall;
  for (let i = 0; i < 4; i++) {
    const next = wall - (wallMs(t, tz) - t);
    if (next === t) break;
    t = next;
  }
  if (wallMs(t, tz) !== wall) throw new Error('no instant has wall time ' + new Date(wall).toISOString() + ' in ' + tz);
  return t;
}

function dateOfSerial(serial, tz) {
  return new Date(instantOfWall(Math.round(serial * DAY_MS) + EPOCH_MS, tz));
}

function pad(n, w) { return String(n).padStart(w, '0'); }

function signedBytes(buf) { return Array.from(buf, (b) => (b > 127 ? b - 256 : b)); }

// ---- spreadsheet stand-in -----------------------------------------------------------------

const tz = scenario.timeZone || 'Etc/GMT';

function cellValue(c) {
  if (c === null || c === undefined) return '';
  if (typeof c === 'object' && 'date' in c) return dateOfSerial(c.date, tz);
  return c;
}

class Range {
  constructor(sheet, row, column, numRows, numColumns) {
    const inside = row >= 1 && column >= 1 && numRows >= 1 && numColumns >= 1 &&
      row + numRows - 1 <= sheet.data.maxRows && column + numColumns - 1 <= sheet.data.maxColumns;
    if (!inside) {
      throw new Error(`The coordinates of the range are outside the dimensions of the sheet (${row}, ${column}, ${numRows}, ${numColumns}).`);
    }
    Object.assign(this, { sheet, row, column, numRows, numColumns });
  }
  getSheet() { return this.sheet; }
  getRow() { return this.row; }
  getColumn() { return this.column; }
  getLastRow() { return this.row + this.numRows - 1; }
  getLastColumn() { return this.column + this.numColumns - 1; }
  getNumRows() { return this.numRows; }
  getNumColumns() { return this.numColumns; }
  getValues() {
    const out = [];
    for (let r = 0; r < this.numRows; r++) {
      const src = this.sheet.data.rows[this.row - 1 + r] || [];
      const row = [];
      for (let c = 0; c < this.numColumns; c++) row.push(cellValue(src[this.column - 1 + c]));
      out.push(row);
    }
    return out;
  }
  getValue() { return this.getValues()[0][0]; }
  setValues(values) {
    this.sheet.checkWrite();
    if (values.length !== this.numRows || values.some((r) => r.length !== this.numColumns)) {
      throw new Error(`The number of rows or columns in the data does not match the range (${this.numRows} x ${this.numColumns}).`);
    }
    for (const r of values) {
      for (const v of r) {
        if (typeof v === 'string' && v.length > MAX_CELL_CHARS) {
          throw new Error(`Your input contains more than the maximum of ${MAX_CELL_CHARS} characters in a single cell.`);
        }
      }
    }
    const rows = this.sheet.data.rows;
    values.forEach((r, i) => {
      const at = this.row - 1 + i;
      while (rows.length <= at) rows.push([]);
      const row = rows[at] || (rows[at] = []);
      while (row.length < this.column - 1) row.push('');
      r.forEach((v, j) => { row[this.column - 1 + j] = v; });
    });
    return this;
  }
  setValue(v) { return this.setValues([[v]]); }
}

class Protection {
  constructor(sheet) { this.record = { description: '', warningOnly: false }; sheet.data.protections.push(this.record); }
  setDescription(d) { this.record.description = d; return this; }
  setWarningOnly(w) { this.record.warningOnly = w; return this; }
}

class Sheet {
  constructor(data, parent) {
    this.data = Object.assign({ maxRows: Math.max(1000, data.rows.length), maxColumns: 26, hidden: false, protections: [] }, data);
    this.parent = parent;
  }
  /** Writes to the journal tab must hold the document lock (docs/journal.md). */
  checkWrite() {
    if (this.data.name === JOURNAL && !lockHeld) throw new Error('harness: the journal tab written without the document lock');
  }
  getMaxRows() { return this.data.maxRows; }
  getMaxColumns() { return this.data.maxColumns; }
  insertRowsAfter(after, n) {
    this.checkWrite();
    if (!(after >= 1 && after <= this.data.maxRows && n >= 1)) throw new Error(`insertRowsAfter(${after}, ${n}): out of range`);
    if (after < this.data.rows.length) this.data.rows.splice(after, 0, ...Array.from({ length: n }, () => []));
    this.data.maxRows += n;
    return this;
  }
  deleteColumns(start, n) {
    this.checkWrite();
    if (!(start >= 1 && n >= 1 && start + n - 1 <= this.data.maxColumns)) throw new Error(`deleteColumns(${start}, ${n}): out of range`);
    if (n >= this.data.maxColumns) throw new Error('You cannot delete all the columns on the sheet.');
    for (const r of this.data.rows) if (r) r.splice(start - 1, n);
    this.data.maxColumns -= n;
    return this;
  }
  hideSheet() { this.data.hidden = true; return this; }
  isSheetHidden() { return this.data.hidden; }
  protect() { return new Protection(this); }
  getSheetId() { return this.data.sheetId; }
  getName() { return this.data.name; }
  getParent() { return this.parent; }
  getRange(row, column, numRows, numColumns) {
    return new Range(this, row, column, numRows === undefined ? 1 : numRows, numColumns === undefined ? 1 : numColumns);
  }
  getLastRow() {
    let last = 0;
    this.data.rows.forEach((r, i) => { if ((r || []).some((c) => c !== '' && c !== null)) last = i + 1; });
    return last;
  }
  getLastColumn() {
    let last = 0;
    for (const r of this.data.rows) {
      (r || []).forEach((c, i) => { if (c !== '' && c !== null && i + 1 > last) last = i + 1; });
    }
    return last;
  }
}

class Spreadsheet {
  constructor() {
    this.sheets = scenario.sheets.map((s) => new Sheet(s, this));
    this.active = scenario.activeSheet || 0;
  }
  getId() { return scenario.spreadsheetId; }
  getSpreadsheetTimeZone() { return tz; }
  getSheets() { return this.sheets.slice(); }
  getActiveSheet() { return this.sheets[this.active]; }
  getSheetByName(name) { return this.sheets.find((s) => s.getName() === name) || null; }
  /** A new 1000 x 26 sheet at `index`; it becomes the active sheet, as in Apps Script. */
  insertSheet(name, index) {
    if (this.getSheetByName(name)) throw new Error(`A sheet with the name "${name}" already exists. Please enter another name.`);
    let sheetId;
    do { sheetId = crypto.randomInt(1, 2 ** 31 - 1); } while (this.sheets.some((s) => s.getSheetId() === sheetId));
    const sheet = new Sheet({ sheetId, name, rows: [] }, this);
    const at = index === undefined ? this.sheets.length : Math.min(index, this.sheets.length);
    this.sheets.splice(at, 0, sheet);
    this.active = at;
    return sheet;
  }
}

const spreadsheet = new Spreadsheet();
const properties = Object.assign({}, scenario.properties || {});
const responses = (scenario.respond || []).slice();

function post(url, headers, body) {
  const child = `
    let input = '';
    process.stdin.on('data', (d) => { input += d; });
    process.stdin.on('end', async () => {
      const req = JSON.parse(input);
      try {
        const res = await fetch(req.url, { method: 'POST', headers: req.headers, body: Buffer.from(req.body, 'utf8') });
        process.stdout.write(JSON.stringify({ status: res.status, text: await res.text() }));
      } catch (e) {
        process.stdout.write(JSON.stringify({ error: String(e && e.cause || e) }));
      }
    });`;
  const res = JSON.parse(execFileSync(process.execPath, ['-e', child], {
    input: JSON.stringify({ url, headers, body }),
    encoding: 'utf8',
  }));
  if (res.error) throw new Error('Exception: Address unavailable: ' + url + ' (' + res.error + ')');
  return res;
}

const sandbox = {
  console: {
    log: (...a) => out.logs.push(['log', a.join(' ')]),
    info: (...a) => out.logs.push(['info', a.join(' ')]),
    warn: (...a) => out.logs.push(['warn', a.join(' ')]),
    error: (...a) => out.logs.push(['error', a.join(' ')]),
  },
  LockService: {
    getDocumentLock: () => ({
      tryLock(ms) {
        out.locks.push(['tryLock', ms]);
        if (scenario.lockBusy) return false;
        lockHeld = true;
        return true;
      },
      hasLock: () => lockHeld,
      releaseLock() { out.locks.push(['releaseLock']); lockHeld = false; },
    }),
  },
  SpreadsheetApp: {
    getActive: () => spreadsheet,
    getActiveSpreadsheet: () => spreadsheet,
    getUi: () => { throw new Error('SpreadsheetApp.getUi is not available in the test harness'); },
    flush: () => { out.locks.push(lockHeld ? ['flush'] : ['flush without the lock']); },
  },
  PropertiesService: {
    getScriptProperties: () => ({
      getProperty: (k) => (Object.prototype.hasOwnProperty.call(properties, k) ? properties[k] : null),
      setProperty(k, v) { properties[k] = String(v); return this; },
      setProperties(o) { for (const k of Object.keys(o)) properties[k] = String(o[k]); return this; },
      getProperties: () => Object.assign({}, properties),
      deleteProperty(k) { delete properties[k]; return this; },
    }),
  },
  ScriptApp: {
    newTrigger(fn) {
      const t = { fn, source: null, event: null };
      const builder = {
        forSpreadsheet(ss) { t.source = ss.getId(); return builder; },
        onEdit() { t.event = 'ON_EDIT'; return builder; },
        onChange() { t.event = 'ON_CHANGE'; return builder; },
        create() {
          if (!t.source || !t.event) throw new Error('incomplete trigger');
          const trigger = { getHandlerFunction: () => t.fn, getEventType: () => t.event, t };
          out.triggers.push(t);
          return trigger;
        },
      };
      return builder;
    },
    getProjectTriggers: () => out.triggers.map((t) => ({ getHandlerFunction: () => t.fn, t })),
    deleteTrigger(trigger) { out.triggers = out.triggers.filter((t) => t !== trigger.t); },
  },
  Utilities: {
    Charset: { UTF_8: 'UTF_8', US_ASCII: 'US_ASCII' },
    getUuid: () => crypto.randomUUID(),
    sleep: (ms) => { out.sleeps.push(ms); },
    newBlob: (s) => ({ getBytes: () => signedBytes(Buffer.from(String(s), 'utf8')) }),
    computeHmacSha256Signature(value, key, charset) {
      if (typeof value !== 'string' || typeof key !== 'string') throw new Error('harness: string value and key expected');
      if (charset !== undefined && charset !== 'UTF_8') throw new Error('harness: only UTF_8 is modelled');
      return signedBytes(crypto.createHmac('sha256', Buffer.from(key, 'utf8')).update(Buffer.from(value, 'utf8')).digest());
    },
    formatDate(date, zone, pattern) {
      if (pattern !== "yyyy-MM-dd'T'HH:mm:ss.SSS") throw new Error('harness: formatDate pattern not modelled: ' + pattern);
      const w = wallParts(date.getTime(), zone);
      return `${pad(w.year, 4)}-${pad(w.month, 2)}-${pad(w.day, 2)}T${pad(w.hour, 2)}:${pad(w.minute, 2)}:${pad(w.second, 2)}.${pad(w.ms, 3)}`;
    },
  },
  UrlFetchApp: {
    fetch(url, options) {
      const headers = Object.assign({}, options.headers || {});
      if (options.contentType) headers['Content-Type'] = options.contentType;
      const body = typeof options.payload === 'string' ? options.payload : JSON.stringify(options.payload);
      const record = { url, method: String(options.method || 'get').toUpperCase(), contentType: options.contentType || null, headers, payload: body, muteHttpExceptions: !!options.muteHttpExceptions };
      out.requests.push(record);
      let status;
      let text = '';
      if (scenario.deliver) {
        const res = post(url, headers, body);
        status = res.status;
        text = res.text;
      } else {
        status = responses.length ? responses.shift() : 200;
      }
      record.status = status;
      record.responseText = text;
      if (status >= 400 && !options.muteHttpExceptions) throw new Error(`Request failed for ${url} returned code ${status}`);
      return { getResponseCode: () => status, getContentText: () => text };
    },
  },
};

const ctx = vm.createContext(sandbox);
vm.runInContext(fs.readFileSync(scenario.script, 'utf8'), ctx, { filename: scenario.script });

for (const call of scenario.calls || []) {
  try {
    const fn = ctx[call.fn];
    if (typeof fn !== 'function') throw new Error('sheetsync.gs defines no function ' + call.fn);
    let args = call.args || [];
    if (call.event) {
      const ev = call.event;
      const e = { authMode: 'FULL', triggerUid: '1', source: spreadsheet, user: { getEmail: () => ev.user || '' } };
      if (ev.range) {
        const sheet = spreadsheet.getSheets()[ev.sheet || 0];
        e.range = sheet.getRange(ev.range.row, ev.range.column, ev.range.numRows, ev.range.numColumns);
      }
      if (ev.changeType) e.changeType = ev.changeType;
      args = [e];
    }
    fn.apply(null, args);
  } catch (err) {
    out.errors.push({ fn: call.fn, error: String(err && err.stack || err) });
  }
}

out.properties = properties;
out.sheets = spreadsheet.getSheets().map((s) => s.data);
out.triggers = out.triggers.map((t) => ({ fn: t.fn, source: t.source, event: t.event }));
process.stdout.write(JSON.stringify(out));
