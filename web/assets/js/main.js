// The app: loads /config.json, keeps the session, routes on the URL hash and refreshes the page
// every few seconds while the tab is visible.

import { Api } from "./api.js";
import { Auth } from "./auth.js";
import { h, replace } from "./dom.js";
import { accountPage } from "./pages/account.js";
import { signInPage, signUpPage } from "./pages/auth.js";
import { preferencesPage } from "./pages/preferences.js";
import { signalsPage } from "./pages/signals.js";
import { systemPage } from "./pages/system.js";
import { tradingPage } from "./pages/trading.js";

const POLL_MS = 5000;

const ROUTES = {
  "/signals": { title: "Signals", page: signalsPage, nav: true },
  "/trading": { title: "Trading", page: tradingPage, nav: true, auth: true },
  "/account": { title: "Account", page: accountPage, nav: true, auth: true },
  "/preferences": { title: "Preferences", page: preferencesPage, nav: true, auth: true },
  "/system": { title: "System", page: systemPage, nav: true },
  "/signin": { title: "Sign in", page: signInPage },
  "/signup": { title: "Sign up", page: signUpPage },
};

class App {
  constructor(config) {
    this.config = config;
    this.auth = new Auth(config);
    this.api = new Api(config, this.auth);
    this.root = document.getElementById("page");
    this.current = null;
    this.timer = null;
    this.auth.onChange(() => {
      this.renderHeader();
      const route = ROUTES[this.path()];
      if (route && route.auth && !this.auth.session) this.go("/signin");
    });
    window.addEventListener("hashchange", () => this.route());
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) this.refresh();
    });
  }

  path() {
    const hash = window.location.hash.replace(/^#/, "");
    return hash in ROUTES ? hash : "/signals";
  }

  go(path) {
    if (window.location.hash === `#${path}`) this.route();
    else window.location.hash = path;
  }

  renderHeader() {
    const path = this.path();
    const links = Object.entries(ROUTES)
      .filter(([, r]) => r.nav && (!r.auth || this.auth.session))
      .map(([p, r]) => h("a", { href: `#${p}`, class: p === path ? "active" : "", text: r.title }));
    replace(document.getElementById("nav"), links);
    const who = document.getElementById("who");
    if (this.auth.session) {
      const email = (this.auth.user && this.auth.user.email) || "signed in";
      replace(
        who,
        h("span", { id: "who-email", text: email }),
        h("button", { id: "sign-out", type: "button", onclick: () => this.signOut(), text: "Sign out" }),
      );
    } else {
      replace(who, h("a", { href: "#/signin", text: "Sign in" }), h("a", { href: "#/signup", text: "Sign up" }));
    }
  }

  async signOut() {
    await this.auth.signOut();
    this.go("/signin");
  }

  route() {
    const path = this.path();
    const route = ROUTES[path];
    if (route.auth && !this.auth.session) {
      this.go("/signin");
      return;
    }
    if (this.current && this.current.unmount) this.current.unmount();
    document.title = `${route.title} · AITRADEX1`;
    this.root.dataset.page = path.slice(1);
    replace(this.root);
    this.current = route.page(this.root, this) || {};
    this.renderHeader();
    this.schedule();
  }

  async refresh() {
    clearTimeout(this.timer);
    const page = this.current;
    if (page && page.refresh && !document.hidden) {
      try {
        await page.refresh();
      } catch {
        // Each page shows its own errors; the next poll tries again.
      }
    }
    this.schedule();
  }

  schedule() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.refresh(), POLL_MS);
  }
}

async function start() {
  let config;
  try {
    const response = await fetch("/config.json", { cache: "no-store", credentials: "omit" });
    config = await response.json();
    if (!response.ok) throw new Error((config.error && config.error.message) || `HTTP ${response.status}`);
  } catch (err) {
    replace(document.getElementById("page"), h("p", { class: "error", text: `The app's configuration cannot be loaded: ${err.message}` }));
    return;
  }
  const app = new App(config);
  app.route();
}

start();
