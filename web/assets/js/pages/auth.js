// Sign in and sign up, with the auth server's own message shown inline on failure.

import { field, h } from "../dom.js";

function authForm(root, app, { title, submitLabel, action, other }) {
  const email = h("input", { type: "email", name: "email", autocomplete: "email", required: true });
  const password = h("input", {
    type: "password",
    name: "password",
    autocomplete: action === "signup" ? "new-password" : "current-password",
    required: true,
  });
  const error = h("p", { class: "form-error", id: "auth-error", role: "alert" });
  const submit = h("button", { class: "primary", type: "submit", text: submitLabel });
  const form = h(
    "form",
    { class: "form panel", id: `${action}-form`, novalidate: true },
    field("Email", email, { name: "email" }),
    field("Password", password, { name: "password" }),
    submit,
    error,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    submit.disabled = true;
    try {
      if (action === "signup") await app.auth.signUp(email.value.trim(), password.value);
      else await app.auth.signIn(email.value.trim(), password.value);
      app.go(action === "signup" ? "/account" : "/signals");
    } catch (err) {
      error.textContent = err.message;
    } finally {
      submit.disabled = false;
    }
  });
  root.append(
    h("h1", { text: title }),
    form,
    h("p", { class: "muted" }, other.text, " ", h("a", { href: other.href, text: other.link })),
  );
  return {};
}

export function signInPage(root, app) {
  return authForm(root, app, {
    title: "Sign in",
    submitLabel: "Sign in",
    action: "signin",
    other: { text: "No account yet?", href: "#/signup", link: "Sign up" },
  });
}

export function signUpPage(root, app) {
  return authForm(root, app, {
    title: "Sign up",
    submitLabel: "Create account",
    action: "signup",
    other: { text: "Already have an account?", href: "#/signin", link: "Sign in" },
  });
}
