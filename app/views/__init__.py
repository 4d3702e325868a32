"""Blueprints by audience: auth (login/logout), member pages, admin pages."""
