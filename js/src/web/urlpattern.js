// `URLPattern` (WHATWG URL Pattern), evaluated in every isolate after
// prelude.js. Deno's `urlpattern` crate (js/src/url_pattern.rs) parses the
// pattern into one ECMAScript regexp per component and canonicalises the
// URL to match; the regexps run here, on the engine's own RegExp.
(function (native) {
  'use strict';
  const COMPONENTS = ['protocol', 'username', 'password', 'hostname', 'port', 'pathname', 'search', 'hash'];
  // A string, or a URLPatternInit's known members as strings.
  function inputJson(input, what) {
    if (typeof input === 'string') return JSON.stringify(input);
    if (input === null || typeof input !== 'object') throw new TypeError(`URLPattern: ${what} must be a string or an object`);
    const init = {};
    for (const k of [...COMPONENTS, 'baseURL']) if (input[k] !== undefined) init[k] = String(input[k]);
    return JSON.stringify(init);
  }
  const slots = new WeakMap();
  function slot(p) {
    const s = slots.get(p);
    if (!s) throw new TypeError('expected a URLPattern');
    return s;
  }
  class URLPattern {
    constructor(input = {}, baseURL = undefined, options = undefined) {
      if (baseURL !== null && typeof baseURL === 'object') {
        options = baseURL;
        baseURL = undefined;
      }
      const ignoreCase = !!(options && options.ignoreCase);
      const parsed = JSON.parse(native.urlPatternParse(inputJson(input, 'input'), baseURL === undefined ? null : String(baseURL), ignoreCase));
      const components = {};
      for (const k of COMPONENTS) {
        const c = parsed[k];
        let regexp;
        try {
          regexp = new RegExp(c.regexpString, ignoreCase ? 'ui' : 'u');
        } catch (e) {
          throw new TypeError(`URLPattern: invalid ${k} pattern: ${e.message}`);
        }
        components[k] = { pattern: c.patternString, regexp, groups: c.groupNameList };
      }
      slots.set(this, { components, hasRegExpGroups: parsed.hasRegexpGroups });
    }
    test(input = {}, baseURL = undefined) {
      return this.exec(input, baseURL) !== null;
    }
    exec(input = {}, baseURL = undefined) {
      const { components } = slot(this);
      const values = native.urlPatternMatchInput(inputJson(input, 'input'), baseURL === undefined ? null : String(baseURL));
      if (values === null || values === undefined) return null;
      const parts = JSON.parse(values);
      const result = { inputs: baseURL === undefined ? [input] : [input, baseURL] };
      for (const k of COMPONENTS) {
        const c = components[k];
        const m = c.regexp.exec(parts[k]);
        if (m === null) return null;
        const groups = {};
        c.groups.forEach((name, i) => { groups[name] = m[i + 1]; });
        result[k] = { input: parts[k], groups };
      }
      return result;
    }
    get hasRegExpGroups() { return slot(this).hasRegExpGroups; }
    get [Symbol.toStringTag]() { return 'URLPattern'; }
  }
  for (const k of COMPONENTS) {
    Object.defineProperty(URLPattern.prototype, k, { get() { return slot(this).components[k].pattern; }, configurable: true, enumerable: true });
  }
  Object.defineProperty(globalThis, 'URLPattern', { value: URLPattern, writable: true, configurable: true, enumerable: false });
});
