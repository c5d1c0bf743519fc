"""The app's Streamlit layer: shared resources, typed session state, the page shell and the parts pages share.

``vitcore`` never imports this package; pages under ``pages/`` import from it and stay thin.
"""
