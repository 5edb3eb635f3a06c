"""The agents' workspace in the browser: desk's pages for working tickets (issue 9 item 2)."""
