// Starts Swagger UI on /docs with the gateway's OpenAPI document (a file, not inline, so that the
// page needs no inline script).
window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
  });
};
