// The browser client: replaced by the full page.
document.getElementById("app").textContent = "confab";
