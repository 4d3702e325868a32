// The API docs page: Swagger UI on Warren's own OpenAPI document. "Try it
// out" needs a token (Authorize): the API takes no session cookie.
(function () {
  var root = document.getElementById("swagger-ui");
  window.SwaggerUIBundle({ url: root.dataset.url, domNode: root, deepLinking: true });
})();
