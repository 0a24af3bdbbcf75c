"""Paths shared by the tests."""
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
