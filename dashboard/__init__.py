"""Manager dashboard (Streamlit)."""
