"""gspread pointed at the Sheets emulator: shared by the scripts in this directory."""
import gspread
import requests


class EmuSession(requests.Session):
    """Sends requests for Google's hosts to the emulator at `base` instead."""

    def __init__(self, base):
        super().__init__()
        self.base = base.rstrip("/")

    def request(self, method, url, *args, **kwargs):
        for prefix in ("https://sheets.googleapis.com", "https://www.googleapis.com"):
            if url.startswith(prefix):
                url = self.base + url[len(prefix):]
        return super().request(method, url, *args, **kwargs)


def gspread_client(base):
    """A gspread client of the emulator at `base` (no credentials: the emulator takes none)."""
    return gspread.Client(auth=None, session=EmuSession(base))
