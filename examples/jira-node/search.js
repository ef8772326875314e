// Atlassian's cookie-based authentication tutorial for Jira, as its
// node-rest-client sample has it: create a session with
// POST /rest/auth/1/session, take session.name and session.value from the
// JSON answer, and send them as `cookie: name=value` with a JQL search to
// POST /rest/api/2/search. Here the server is authd, with the app behind it
// (`authd --upstream http://127.0.0.1:3000`): authd answers the login, and
// the app receives the search as that user (X-AUSERNAME, X-Authd-User).
//
//   npm ci --prefix examples/jira-node
//   JIRA_URL=https://127.0.0.1:8443 JIRA_USER=admin JIRA_PASSWORD=... \
//   AUTHD_CA=db/tls/cert.pem node examples/jira-node/search.js
//
// Settings (environment):
//   JIRA_URL       authd's base URL (default https://127.0.0.1:8443)
//   JIRA_USER      user name (default admin)
//   JIRA_PASSWORD  password
//   JIRA_JQL       the query (default the tutorial's "type=Bug AND status=Closed")
//   AUTHD_CA       authd's certificate (DATA/tls/cert.pem), trusted for this
//                  client only; or set NODE_EXTRA_CA_CERTS to the same file.
//
// The last line printed is the search answer as JSON:
//   {"statusCode":200,"searchResult":{...}}
// Exit status: 0 when the search answered 200, 1 otherwise.

var fs = require('fs');
var Client = require('node-rest-client').Client;

var base = (process.env.JIRA_URL || 'https://127.0.0.1:8443').replace(/\/+$/, '');
var options = {};
if (process.env.AUTHD_CA) {
    // Passed on to https.request: trust authd's self-signed certificate.
    options.connection = { ca: fs.readFileSync(process.env.AUTHD_CA) };
}

function fail(what) {
    console.error(what);
    process.exit(1);
}

var client = new Client(options);
client.on('error', function (err) {
    fail('client error: ' + err);
});

// Provide user credentials, which will be used to log in to Jira.
var loginArgs = {
    data: {
        "username": process.env.JIRA_USER || 'admin',
        "password": process.env.JIRA_PASSWORD || ''
    },
    headers: {
        "Content-Type": "application/json"
    }
};
var login = client.post(base + "/rest/auth/1/session", loginArgs, function (data, response) {
    if (response.statusCode == 200) {
        // The tutorial prints the whole session here; its value is a secret,
        // so only the cookie's name is shown.
        console.log('succesfully logged in, session cookie:', data.session.name);
        var session = data.session;
        // Get the session information and store it in a cookie in the header
        var searchArgs = {
            headers: {
                // Set the cookie from the session information
                cookie: session.name + '=' + session.value,
                "Content-Type": "application/json"
            },
            data: {
                // Provide additional data for the JQL search
                jql: process.env.JIRA_JQL || "type=Bug AND status=Closed"
            }
        };
        // Make the request return the search results, passing the header information including the cookie.
        var search = client.post(base + "/rest/api/2/search", searchArgs, function (searchResult, response) {
            console.log('status code:', response.statusCode);
            console.log('search result:', searchResult);
            console.log(JSON.stringify({ statusCode: response.statusCode, searchResult: searchResult }));
            process.exit(response.statusCode == 200 ? 0 : 1);
        });
        search.on('error', function (err) {
            fail('search failed: ' + err);
        });
    } else {
        fail("Login failed :( " + response.statusCode + " " + JSON.stringify(data));
    }
});
login.on('error', function (err) {
    fail('login failed: ' + err);
});
