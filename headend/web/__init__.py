"""The dashboard: staff pages and the tenant portal, server-rendered with
Jinja and enhanced with htmx (a partial serves both the first page and its
live updates), in Chinese and English."""
