"""Writes microsoft-forms.xlsx cell by cell in the layout Microsoft Forms' "Open in Excel" gives
(see SOURCE.md): one sheet, one header row (ID, Start time, Completion time, Email, Name, then each
question's text), dates as Excel dates, choices as their text, several choices joined by ';' with a
trailing ';', ratings as numbers. Run: python tests/data/surveys/tools/make_microsoft_forms.py"""

from datetime import datetime
from pathlib import Path

import openpyxl

HEADER = ["ID", "Start time", "Completion time", "Email", "Name", "I am satisfied with my work.", "Would you recommend us? (0-10)",
          "I get long stretches of focus.", "Interruptions are rare.", "What slows you down most?", "What should we improve?",
          "Anything else?", "Consent"]
ROWS = [
    [1, datetime(2025, 3, 3, 9, 57, 12), datetime(2025, 3, 3, 10, 0, 0), "a1@example.com", "Alex One", "Strongly agree", 10,
     "Strongly agree", "Strongly agree", "CI", "CI;Docs;", "Great quarter", "Yes"],
    [2, datetime(2025, 3, 4, 11, 2, 40), datetime(2025, 3, 4, 11, 5, 0), "a2@example.com", "Ada Two", "Agree", 9,
     "Agree", "Disagree", "Meetings", "Docs;", None, "No"],
    [3, datetime(2025, 3, 5, 14, 20, 5), datetime(2025, 3, 5, 14, 22, 30), "b1@example.com", "Bo One", "Disagree", 3,
     "Neutral", "Neutral", None, "Laptops;", "Slow builds, again", "Yes"],
]

if __name__ == "__main__":
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Sheet1"
    for row in [HEADER, *ROWS]:
        sheet.append(row)
    for cell in (*sheet["B"][1:], *sheet["C"][1:]):
        cell.number_format = "m/d/yy h:mm:ss"
    book.save(Path(__file__).with_name("microsoft-forms.xlsx"))
