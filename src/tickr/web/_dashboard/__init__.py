"""The dashboard: server-rendered pages of the HTTP app, behind the same tokens.

`routes` gives the pages and their POST actions; the app adds them next to the JSON
API.  Pages are Jinja2 templates with autoescaping; the only script is static/live.js,
which refreshes the page's live part and which no page needs.
"""

from tickr.web._dashboard.views import routes

__all__ = ["routes"]
