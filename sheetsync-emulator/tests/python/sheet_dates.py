"""Run by the sheetsync daemon's end-to-end test `dates_through_gspread`
(examples/sheetsync/tests/e2e/dates.rs): reads a spreadsheet the daemon wrote into the
emulator, through gspread, and prints what it sees as JSON: the values as a person sees them
(FORMATTED_VALUE, gspread's default) and as stored (UNFORMATTED_VALUE).

Usage: sheet_dates.py <emulator base URL> <spreadsheet id>
"""
import json
import sys

from emulated import gspread_client

ws = gspread_client(sys.argv[1]).open_by_key(sys.argv[2]).sheet1
print(json.dumps({
    "formatted": ws.get_all_values(),
    "unformatted": ws.get(value_render_option="UNFORMATTED_VALUE"),
}))
