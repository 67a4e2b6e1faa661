import { describeForgeErrorBody, redact } from './errors';

describe('describeForgeErrorBody', () => {
  it('reads GitHub validation errors', () => {
    const body = JSON.stringify({
      message: 'Validation Failed',
      errors: [{ resource: 'Status', code: 'custom', field: 'description', message: 'description is too long' }],
      documentation_url: 'https://docs.github.com/rest',
    });
    expect(describeForgeErrorBody(body)).toBe('Validation Failed: description is too long');
  });

  it('reads GitLab messages, field errors and Grape errors', () => {
    expect(describeForgeErrorBody('{"message":"404 Project Not Found"}')).toBe('404 Project Not Found');
    expect(describeForgeErrorBody('{"message":{"target_url":["is too long"]}}')).toBe('target_url is too long');
    expect(describeForgeErrorBody('{"error":"state does not have a valid value"}')).toBe(
      'state does not have a valid value',
    );
  });

  it('reads Gitea messages', () => {
    expect(describeForgeErrorBody('{"message":"token is required","url":"https://gitea/api/swagger"}')).toBe(
      'token is required',
    );
  });

  it('falls back to the first words of a non-JSON body', () => {
    expect(describeForgeErrorBody('<html>\n  Bad   gateway </html>')).toBe('<html> Bad gateway </html>');
    expect(describeForgeErrorBody('')).toBeUndefined();
    expect(describeForgeErrorBody('x'.repeat(500))).toHaveLength(201);
  });
});

describe('redact', () => {
  it('blanks every occurrence of the secret', () => {
    expect(redact('a tok b tok', 'tok')).toBe('a *** b ***');
    expect(redact('nothing', '')).toBe('nothing');
  });
});
