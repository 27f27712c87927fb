"""The project's routes: the same as every real-server test app."""

from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("items/<int:item_id>", views.item),
    path("boom", views.boom),
    path("stream", views.stream),
]
