// Starts Swagger UI for the BaatCheet API. A file of its own, not an inline script, so the page
// runs under the API's Content-Security-Policy (script-src 'self').
(function () {
  "use strict";
  // This file is served at <prefix>/api/docs/swagger-initializer.js; the document sits beside
  // the page at <prefix>/api/docs.json, whatever stage prefix the API is deployed under.
  var self = document.currentScript;
  var documentUrl = new URL("../docs.json", self ? self.src : window.location.href).href;

  window.addEventListener("load", function () {
    window.ui = SwaggerUIBundle({
      url: documentUrl,
      dom_id: "#swagger-ui",
      deepLinking: true,
      displayRequestDuration: true,
      // Tokens are typed into Authorize per visit, not kept in localStorage.
      persistAuthorization: false,
      // The online validator badge would load an image from another origin (CSP img-src 'self').
      validatorUrl: null,
      presets: [SwaggerUIBundle.presets.apis],
      layout: "BaseLayout",
    });
  });
})();
