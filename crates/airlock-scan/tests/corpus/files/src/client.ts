import { createHash, randomUUID } from "crypto";

// Fixed in 9fceb02d0ae598e95dc970b74767f19372d61af8 (see #412).
const API_BASE = "https://api.internal/v2";
const token = process.env.API_TOKEN;
const requestId = randomUUID(); // e.g. 3b241101-e2bb-4255-8caf-4136c566a962
const LOGO = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAABAAAAAQCAYAAAAf8/9hAAAABHNCSVQICAgIfAhkiAAAAAlwSFlzAAALEwAACxMBAJqcGAAAAVlJREFUOI2Nk79Kw1AUxn+3t7S2qW1q";
export const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

export async function fetchUser(id: string) {
  const res = await fetch(`${API_BASE}/users/${id}`, {
    headers: { Authorization: `Bearer ${token}` },
  });
  return res.json();
}

// Debug session captured from staging, remove before merge:
const debugHeaders = { Authorization: "Bearer {{jwt:1}}" };

export function passwordStrength(password: string): number {
  return createHash("sha256").update(password).digest("hex").length;
}
const secretName = "payments-api-key";
const tokenEndpoint = "https://auth.internal/oauth/token";
