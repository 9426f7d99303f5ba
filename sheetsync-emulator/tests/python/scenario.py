"""Scripted scenario run by tests/python_client.rs against the sheetsync-emulator binary.

Uses two independent clients from PyPI, pointed at the emulator as docs/sheets-api-v4.md §8
describes: gspread (through a requests.Session that rewrites Google's hosts) and
google-api-python-client (client_options.api_endpoint + a plain httplib2.Http()).
Every check raises AssertionError with a message; the process exit code is the verdict.
"""
import sys

import gspread
import httplib2
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from emulated import gspread_client

BASE = sys.argv[1].rstrip("/")


def eq(got, want, what):
    assert got == want, f"{what}: got {got!r}, want {want!r}"
    print(f"ok - {what}")


# ---------------------------------------------------------------- gspread
gc = gspread_client(BASE)
sh = gc.create("Scenario")  # Drive v3 files.create
eq(len(sh.id), 44, "gspread create returns a Google-shaped id")
ws = sh.sheet1
eq(ws.title, "Sheet1", "default first sheet")
eq((ws.row_count, ws.col_count), (1000, 26), "default grid")

ws.update(values=[["name", "qty"], ["apple", 3], ["pear", "0042"]], range_name="A1")
eq(ws.get_all_values(), [["name", "qty"], ["apple", "3"], ["pear", "0042"]], "RAW keeps '0042' a string")

ws.append_row(["banana", "7"], value_input_option="USER_ENTERED")
eq(ws.acell("B4").value, "7", "append_row lands after the table")
eq(ws.get("B4", value_render_option="UNFORMATTED_VALUE"), [[7]], "USER_ENTERED '7' is a number")
eq(
    ws.get_all_records(),
    [{"name": "apple", "qty": 3}, {"name": "pear", "qty": 42}, {"name": "banana", "qty": 7}],
    "get_all_records (gspread numericises '0042' itself)",
)

ws.update_acell("C1", "=SUM(B2,B4)")
eq(ws.acell("C1").value, "10", "formula evaluated")
eq(ws.acell("C1", value_render_option="FORMULA").value, "=SUM(B2,B4)", "FORMULA render")

ws.insert_row(["kiwi", 1], index=2)
eq(ws.row_values(2), ["kiwi", "1"], "insert_row")
eq(ws.row_values(3), ["apple", "3"], "rows shifted down")
eq(ws.acell("C1", value_render_option="FORMULA").value, "=SUM(B3,B5)", "formula references followed the insert")
eq(ws.acell("C1").value, "10", "formula value unchanged by the insert")
ws.delete_rows(2)
eq(ws.row_values(2), ["apple", "3"], "delete_rows")
eq(ws.acell("C1", value_render_option="FORMULA").value, "=SUM(B2,B4)", "formula references followed the delete")

ws.batch_clear(["A3:B3"])
eq(
    sh.values_get("Sheet1!A1:B10")["values"],
    [["name", "qty"], ["apple", "3"], [], ["banana", "7"]],
    "interior empty row is [] and trailing rows are trimmed",
)

second = sh.add_worksheet(title="Second Sheet", rows=10, cols=5)
second.update_title("Jon's Data")
second.update(values=[["x", "y"]], range_name="A1")
eq(sh.values_get("'Jon''s Data'!A1:B1")["values"], [["x", "y"]], "quoted title with doubled apostrophe")
eq(sh.values_get("'Jon''s Data'!A1:B1")["range"], "'Jon''s Data'!A1:B1", "normalised range")
second.resize(rows=20, cols=3)
second = sh.worksheet("Jon's Data")
eq((second.row_count, second.col_count), (20, 3), "resize via updateSheetProperties with slash mask")

try:
    second.update(values=[["too far"]], range_name="A21")
    raise AssertionError("writing past the grid must fail")
except gspread.exceptions.APIError as e:
    eq(e.response.status_code, 400, "grid limit is a 400")
    eq(
        e.response.json()["error"]["message"],
        "Range ('Jon''s Data'!A21) exceeds grid limits. Max rows: 20, max columns: 3",
        "grid limit message",
    )

reopened = gc.open("Scenario")  # Drive files.list with q
eq(reopened.id, sh.id, "open by title")
try:
    gc.open_by_key("does-not-exist")
    raise AssertionError("opening a missing spreadsheet must fail")
except gspread.exceptions.SpreadsheetNotFound:
    print("ok - missing spreadsheet raises SpreadsheetNotFound")

# ------------------------------------------------- google-api-python-client
svc = build(
    "sheets",
    "v4",
    http=httplib2.Http(),
    static_discovery=True,
    client_options={"api_endpoint": BASE + "/"},
)
values = svc.spreadsheets().values()
got = values.get(spreadsheetId=sh.id, range="Sheet1!A1:C3", valueRenderOption="UNFORMATTED_VALUE").execute()
eq(got["range"], "Sheet1!A1:C3", "python client: normalised range")
eq(got["values"], [["name", "qty", 10], ["apple", 3]], "python client: unformatted values")

res = values.batchUpdate(
    spreadsheetId=sh.id,
    body={
        "valueInputOption": "USER_ENTERED",
        "data": [
            {"range": "Sheet1!E1", "values": [["2020-01-01", "12%"]]},
            {"range": "Sheet1!E3:F3", "values": [["TRUE", "=1/0"]]},
        ],
    },
).execute()
eq((res["totalUpdatedCells"], res["totalUpdatedRows"], res["totalUpdatedColumns"]), (4, 2, 2), "batchUpdate totals")
got = values.batchGet(
    spreadsheetId=sh.id,
    ranges=["Sheet1!E1:F1", "Sheet1!E3:F3"],
    valueRenderOption="UNFORMATTED_VALUE",
).execute()
eq([vr["values"] for vr in got["valueRanges"]], [[[43831, 0.12]], [[True, "#DIV/0!"]]], "batchGet typed values")
got = values.get(spreadsheetId=sh.id, range="Sheet1!E1:F1").execute()
eq(got["values"], [["2020-01-01", "12%"]], "FORMATTED_VALUE keeps the input style")

app = values.append(
    spreadsheetId=sh.id, range="Sheet1!A:B", valueInputOption="RAW", insertDataOption="INSERT_ROWS",
    body={"values": [["cherry", 5]]},
).execute()
eq(app.get("tableRange"), "Sheet1!A4:B4", "append finds the table")
eq(app["updates"]["updatedRange"], "Sheet1!A5:B5", "append after the last table row")

svc.spreadsheets().batchUpdate(
    spreadsheetId=sh.id,
    body={"requests": [{"createDeveloperMetadata": {"developerMetadata": {
        "metadataId": 77, "metadataKey": "row-key", "metadataValue": "apple",
        "location": {"dimensionRange": {"sheetId": 0, "dimension": "ROWS", "startIndex": 1, "endIndex": 2}},
        "visibility": "DOCUMENT"}}}]},
).execute()
found = svc.spreadsheets().developerMetadata().search(
    spreadsheetId=sh.id, body={"dataFilters": [{"developerMetadataLookup": {"metadataKey": "row-key"}}]}
).execute()
eq(found["matchedDeveloperMetadata"][0]["developerMetadata"]["metadataValue"], "apple", "metadata search")
eq(svc.spreadsheets().developerMetadata().get(spreadsheetId=sh.id, metadataId=77).execute()["metadataKey"], "row-key", "metadata get")

try:
    values.get(spreadsheetId=sh.id, range="Nope!A1").execute()
    raise AssertionError("bad range must fail")
except HttpError as e:
    eq(e.resp.status, 400, "python client: 400")
    eq(e.reason, "Unable to parse range: Nope!A1", "python client: Google's message")

meta = svc.spreadsheets().get(spreadsheetId=sh.id, fields="sheets.properties(title,index)").execute()
eq(meta, {"sheets": [{"properties": {"title": "Sheet1", "index": 0}}, {"properties": {"title": "Jon's Data", "index": 1}}]}, "fields mask")

gc.del_spreadsheet(sh.id)  # Drive files.delete -> 204
try:
    gc.open_by_key(sh.id)
    raise AssertionError("deleted spreadsheet must be gone")
except gspread.exceptions.SpreadsheetNotFound:
    print("ok - deleted")
print("SCENARIO PASSED")
